"""Disk use: a local run leaves no copy of its inputs behind, a job cannot write
through its inputs into the store, `gc` frees what nothing refers to, `clean` says
what it removed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ProjectDir

from ssmake.stores.local import LocalStore

OVERWRITES_ITS_INPUT = """
import os
from pathlib import Path
from worker_toolkit import worker_lib
args = worker_lib.parseArgs()
data = Path(os.environ["SM_CHANNEL_DATA"], "table.csv")
assert data.read_text() == "a,b\\n", data.read_text()
if args.current_host == "algo-1":
    with open(data, "r+") as f:  # in place: a link would carry this to its source
        f.write("XXXX")
Path(args.model_dir, "weights").write_text(os.environ.get("SEED", "0") * 1000)
"""


def ssmfile(project: ProjectDir, seed: int = 0) -> None:
    project.ssmfile(
        f"""
        [tasks.train]
        entry_point = "train.py"
        instance_count = 2
        inputs = {{ data = "data" }}
        hyperparameters = {{ seed = {seed} }}
        environment = {{ SEED = "{seed}" }}
        """
    )


def stored_inputs(project: ProjectDir) -> list[Path]:
    return sorted(project.store(project.root.name, "train", "input").rglob("table.csv"))


def test_a_job_writing_to_its_input_leaves_the_store_and_the_other_instance_alone(
    project: ProjectDir,
) -> None:
    project.write("data/table.csv", "a,b\n")
    project.write("train.py", OVERWRITES_ITS_INPUT)
    ssmfile(project)

    result = project.run()

    assert result.code == 0, result.err  # algo-2 read its input whole
    assert [p.read_text() for p in stored_inputs(project)] == ["a,b\n"]
    assert (project.root / "data" / "table.csv").read_text() == "a,b\n"
    assert "up to date" in project.run().err


def test_a_local_run_removes_its_run_directory_once_its_results_are_stored(
    project: ProjectDir,
) -> None:
    project.write("data/table.csv", "a,b\n")
    project.write("train.py", OVERWRITES_ITS_INPUT)
    ssmfile(project)

    assert project.run().code == 0

    runs = project.root / ".ssmake" / "cache" / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []
    marker = json.loads(project.store(project.root.name, "train", "ssmake.json").read_text())
    job_dir = project.store(project.root.name, "train", marker["job"])
    assert (job_dir / "output" / "model.tar.gz").is_file()
    assert sorted(p.name for p in (job_dir / "logs").iterdir()) == ["algo-1.log", "algo-2.log"]


def test_a_local_store_takes_a_run_file_by_rename_and_a_kept_run_keeps_its_files(
    project: ProjectDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's tarballs and logs are renamed into a local store, never copied (a
    model of gigabytes would be written twice); a kept run directory keeps them."""
    store = LocalStore(tmp_path / "store")
    made = tmp_path / "model.tar.gz"
    made.write_bytes(b"m" * 4096)
    inode = made.stat().st_ino
    store.move_file("p/t/job/output/model.tar.gz", made)
    stored = store.file("p/t/job/output/model.tar.gz")
    assert not made.exists() and stored.read_bytes() == b"m" * 4096
    assert stored.stat().st_ino == inode

    project.write("data/table.csv", "a,b\n")
    project.write("train.py", OVERWRITES_ITS_INPUT)
    ssmfile(project)
    monkeypatch.setenv("SSMAKE_KEEP_RUN_DIRS", "1")
    assert project.run().code == 0
    [run] = (project.root / ".ssmake" / "cache" / "runs").iterdir()
    assert (run / "model.tar.gz").is_file() and (run / "logs" / "algo-1.log").is_file()
    marker = json.loads(project.store(project.root.name, "train", "ssmake.json").read_text())
    job_dir = project.store(project.root.name, "train", marker["job"])
    assert (job_dir / "output" / "model.tar.gz").read_bytes() == (run / "model.tar.gz").read_bytes()


def job_dirs(project: ProjectDir) -> list[str]:
    task = project.store(project.root.name, "train")
    return sorted(p.name for p in task.iterdir() if p.name.startswith("train-"))


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_gc_frees_the_jobs_nothing_refers_to_and_says_how_much(project: ProjectDir) -> None:
    project.write("data/table.csv", "a,b\n")
    project.write("train.py", OVERWRITES_ITS_INPUT)
    for seed in (1, 2, 3):
        ssmfile(project, seed)
        assert project.run().code == 0
    jobs = job_dirs(project)
    assert len(jobs) == 3
    task = project.store(project.root.name, "train")
    marker = json.loads((task / "ssmake.json").read_text())
    old = [j for j in jobs if j != marker["job"]]
    expected = sum(tree_size(task / j) for j in old) + sum(
        p.stat().st_size
        for p in (task / "runs").iterdir()
        if json.loads(p.read_text())["job"] != marker["job"]
    )

    dry = project.run("gc", "--keep", "1", "--dry-run")

    assert dry.code == 0, dry.err
    assert "would free" in dry.err and f"({expected} bytes): 2 job(s), 2 run record(s)" in dry.err
    assert all(f"train: would remove job {j}" in dry.err for j in old)
    assert job_dirs(project) == jobs

    result = project.run("gc", "--keep", "1")

    assert result.code == 0, result.err
    assert "freed" in result.err and f"({expected} bytes): 2 job(s), 2 run record(s)" in result.err
    assert job_dirs(project) == [marker["job"]]
    assert len(list((task / "runs").iterdir())) == 1
    assert "up to date" in project.run().err
    assert project.run("download", "train", "-o", "out").code == 0
    assert (project.root / "out" / "model" / "weights").read_text() == "3" * 1000
    again = project.run("gc")
    assert "freed 0 B (0 bytes): 0 job(s), 0 run record(s)" in again.err


def test_gc_keeps_the_recent_runs_a_task_can_be_restored_from(project: ProjectDir) -> None:
    project.write("data/table.csv", "a,b\n")
    project.write("train.py", OVERWRITES_ITS_INPUT)
    for seed in (1, 2):
        ssmfile(project, seed)
        assert project.run().code == 0

    assert project.run("gc").code == 0  # --keep 3: both runs stay
    assert len(job_dirs(project)) == 2
    ssmfile(project, 1)
    assert "restored from an earlier run" in project.run().err


def test_clean_says_what_it_removed(project: ProjectDir) -> None:
    project.write("data/table.csv", "a,b\n")
    project.write("train.py", OVERWRITES_ITS_INPUT)
    ssmfile(project)
    assert project.run().code == 0

    result = project.run("clean")

    assert result.code == 0, result.err
    assert "train: removed the marker, 1 run record(s) (" in result.err
    assert "synced input file(s) (" in result.err
    assert "the jobs' outputs stay until 'ssmake gc'" in result.err
    assert "train: removed nothing (no result)" in project.run("clean").err
