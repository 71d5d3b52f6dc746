"""End to end on the local backend: what a user sees after `ssmake`."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from conftest import ProjectDir

CHAIN = """
[project]
name = "demo"

[tasks.prepare]
entry_point = "code/prepare.py"
instance_count = 2
inputs.data = { path = "data", distribution = "ShardedByS3Key" }
completion = "marked"

[tasks.train]
entry_point = "code/train.py"
instance_count = 2
inputs.prepared = { task = "prepare", output = "model" }
inputs.prev_state = { task = "prepare", output = "state" }
hyperparameters = { lr = 0.5, name = "first run" }

[tasks.report]
entry_point = "code/report.py"
inputs.trained = { task = "train", output = "output" }
download = ["model", "output", "state", "logs"]
output_path = "out/report"
"""

PREPARE = """
import json
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
state = Path(worker_lib.initMultiWorkersState(args))
mine = sorted(p.name for p in Path(args.input_data).iterdir())
Path(args.model_dir, f"seen-{args.current_host}.json").write_text(json.dumps(mine))
Path(args.output_data_dir, f"out-{args.current_host}.txt").write_text("x")
runs = int((state / "runs").read_text()) if (state / "runs").exists() else 0
(state / "runs").write_text(str(runs + 1))
print("prepared", mine)
worker_lib.markCompleted(args)
"""

TRAIN = """
import json, sys, tarfile
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
with tarfile.open(Path(args.input_prepared) / "model.tar.gz") as tar:
    members = sorted(m.name for m in tar.getmembers() if m.isfile())
state_files = sorted(
    str(p.relative_to(args.input_prev_state))
    for p in Path(args.input_prev_state).rglob("*") if p.is_file()
)
info = {"members": members, "state": state_files, "hps": args.hps, "argv": sys.argv[1:],
        "host": args.current_host, "hosts": args.hosts}
Path(args.output_data_dir, "train.json").write_text(json.dumps(info))
Path(args.model_dir, f"weights-{args.current_host}").write_text("w")
"""

REPORT = """
import tarfile
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
with tarfile.open(Path(args.input_trained) / "output.tar.gz") as tar:
    tar.extractall(args.output_data_dir)
Path(args.model_dir, "report.txt").write_text("ok")
Path(args.state, "note").write_text("kept")
"""


def make_chain(project: ProjectDir) -> None:
    project.ssmfile(CHAIN)
    project.write("code/prepare.py", PREPARE)
    project.write("code/train.py", TRAIN)
    project.write("code/report.py", REPORT)
    for i in range(5):
        project.write(f"data/file{i}.txt", f"data {i}\n")


def tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return sorted(m.name for m in tar.getmembers() if m.isfile())


def marker(project: ProjectDir, task: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(project.store("demo", task, "ssmake.json").read_text())
    return doc


def test_three_task_chain_runs_upstream_first_and_shards_input(project: ProjectDir) -> None:
    make_chain(project)

    result = project.run()

    assert result.code == 0, result.err
    prep = marker(project, "prepare")
    model = project.store(str(prep["outputs"]["model"]["key"]))  # type: ignore[index]
    assert tar_names(model) == ["seen-algo-1.json", "seen-algo-2.json"]
    with tarfile.open(model) as tar:
        seen = [
            json.loads(tar.extractfile(f"seen-algo-{i}.json").read())  # type: ignore[union-attr]
            for i in (1, 2)
        ]
    # Every file went to exactly one instance.
    assert sorted(seen[0] + seen[1]) == [f"file{i}.txt" for i in range(5)]
    assert not set(seen[0]) & set(seen[1]) and seen[0] and seen[1]
    # The output tarball is the main instance's only.
    output = project.store(str(prep["outputs"]["output"]["key"]))  # type: ignore[index]
    assert tar_names(output) == ["out-algo-1.txt"]
    # State kept in the store, one subdirectory per instance, with completion marks.
    state = project.store("demo", "prepare", "state")
    assert (state / "algo-1" / "runs").read_text() == "1"
    assert (state / "algo-2" / "__COMPLETED__").read_text() == prep["job"]

    out = json.loads((project.root / "out/report/output/train.json").read_text())
    assert out["members"] == ["seen-algo-1.json", "seen-algo-2.json"]
    assert "algo-1/runs" in out["state"] and "algo-2/__COMPLETED__" in out["state"]
    assert out["hps"] == {"lr": 0.5, "name": "first run"}
    assert out["argv"] == ["--lr", "0.5", "--name", "first run"]
    assert out["host"] == "algo-1" and out["hosts"] == ["algo-1", "algo-2"]
    assert (project.root / "out/report/model/report.txt").read_text() == "ok"
    assert (project.root / "out/report/state/note").read_text() == "kept"
    assert sorted(p.name for p in (project.root / "out/report/logs").iterdir()) == ["logs0"]
    order = [line for line in result.err.splitlines() if ": launched job " in line]
    assert [line.split(":")[1].strip() for line in order] == ["prepare", "train", "report"]


def test_second_run_with_nothing_changed_launches_nothing(project: ProjectDir) -> None:
    make_chain(project)
    assert project.run().code == 0
    before = {t: marker(project, t)["job"] for t in ("prepare", "train", "report")}

    again = project.run()

    assert again.code == 0
    assert "launched job" not in again.err
    for task in ("prepare", "train", "report"):
        assert f"{task} is up to date" in again.err
        assert marker(project, task)["job"] == before[task]


def test_editing_downstream_code_reruns_only_downstream(project: ProjectDir) -> None:
    make_chain(project)
    assert project.run().code == 0
    project.write("code/report.py", REPORT + "\nprint('changed')\n")

    again = project.run()

    assert again.code == 0, again.err
    launched = [ln.split(":")[1].strip() for ln in again.err.splitlines() if "launched job" in ln]
    assert launched == ["report"]


def test_state_is_kept_between_jobs_of_a_task(project: ProjectDir) -> None:
    make_chain(project)
    assert project.run("prepare").code == 0
    assert project.run("-B", "prepare").code == 0

    state = project.store("demo", "prepare", "state")
    assert (state / "algo-1" / "runs").read_text() == "2"
    assert (state / "algo-2" / "runs").read_text() == "2"


def test_failing_worker_leaves_no_marker_and_exits_1(project: ProjectDir) -> None:
    project.ssmfile(
        """
        [tasks.boom]
        entry_point = "boom.py"
        """
    )
    project.write("boom.py", "print('about to fail')\nraise SystemExit(3)\n")

    result = project.run()

    assert result.code == 1
    assert "boom: FAILED" in result.err
    assert "algo-1 failed with exit code 3" in result.err
    assert "about to fail" in result.err
    assert not project.store(project.root.name, "boom", "ssmake.json").exists()
    assert not project.store(project.root.name, "boom", "inflight.json").exists()


def test_downstream_of_a_failure_is_blocked_and_keep_going_runs_the_rest(
    project: ProjectDir,
) -> None:
    project.ssmfile(
        """
        [tasks.bad]
        entry_point = "bad.py"
        [tasks.after-bad]
        entry_point = "ok.py"
        after = ["bad"]
        [tasks.other]
        entry_point = "ok.py"
        """
    )
    project.write("bad.py", "raise SystemExit(1)\n")
    project.write("ok.py", "print('fine')\n")

    result = project.run("-k")

    assert result.code == 1
    assert "after-bad: not run: upstream bad did not complete" in result.err
    assert project.store(project.root.name, "other", "ssmake.json").exists()


def test_marked_completion_requires_every_instance(project: ProjectDir) -> None:
    project.ssmfile(
        """
        [tasks.half]
        entry_point = "half.py"
        instance_count = 2
        completion = "marked"
        """
    )
    project.write(
        "half.py",
        "from worker_toolkit import worker_lib\n"
        "args = worker_lib.parseArgs()\n"
        "if args.current_host == 'algo-1':\n"
        "    worker_lib.markCompleted(args)\n",
    )

    result = project.run()

    assert result.code == 1
    assert "algo-2 did not call worker_lib.markCompleted" in result.err
    assert not project.store(project.root.name, "half", "ssmake.json").exists()


def test_requirements_install_into_a_cached_virtualenv(project: ProjectDir) -> None:
    project.ssmfile(
        """
        [tasks.req]
        source_dir = "code"
        entry_point = "main.py"
        """
    )
    # A local package, so that no index is needed.
    project.write(
        "pkg/pyproject.toml",
        '[project]\nname = "ssmake-test-dep"\nversion = "1.0"\n'
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n',
    )
    project.write("pkg/ssmake_test_dep.py", "VALUE = 42\n")
    project.write("code/requirements.txt", f"{project.root / 'pkg'}\n")
    project.write(
        "code/main.py",
        "import sys, ssmake_test_dep\nprint('dep', ssmake_test_dep.VALUE, sys.prefix)\n",
    )

    result = project.run("-v")

    assert result.code == 0, result.err
    assert "dep 42" in result.err
    # pip's own lines, as they come, tell where an install is.
    assert "[req algo-1] Successfully installed ssmake-test-dep-1.0" in result.err
    venvs = list((project.root / ".ssmake" / "cache" / "venvs").glob("*/.ssmake-complete"))
    assert len(venvs) == 1


def test_dry_run_json_lists_the_plan(project: ProjectDir) -> None:
    make_chain(project)

    result = project.run("-n", "--json")

    doc = json.loads(result.out)
    assert doc["project"] == "demo"
    assert [(t["name"], t["state"]) for t in doc["tasks"]] == [
        ("prepare", "stale"),
        ("train", "stale"),
        ("report", "stale"),
    ]
    assert doc["tasks"][0]["reasons"] == ["no marker yet"]
    assert doc["tasks"][1]["reasons"] == ["upstream prepare will run first"]
    assert not project.store("demo").exists()


def test_targets_build_only_what_they_need(project: ProjectDir) -> None:
    make_chain(project)

    result = project.run("train")

    assert result.code == 0, result.err
    assert project.store("demo", "train", "ssmake.json").exists()
    assert not project.store("demo", "report", "ssmake.json").exists()


def test_parallel_jobs_run_independent_tasks(project: ProjectDir) -> None:
    tasks = "\n".join(f'[tasks.t{i}]\nentry_point = "w.py"\n' for i in range(4))
    project.ssmfile(tasks)
    project.write("w.py", "import time\ntime.sleep(0.3)\n")

    result = project.run("-j", "4")

    assert result.code == 0, result.err
    for i in range(4):
        assert project.store(project.root.name, f"t{i}", "ssmake.json").exists()


def test_bad_config_exits_2_without_traceback(project: ProjectDir) -> None:
    project.ssmfile(
        """
        [tasks.a]
        entrypoint = "a.py"
        """
    )

    result = project.run()

    assert result.code == 2
    assert "Ssmfile.toml:3: tasks.a.entrypoint" in result.err
    assert "did you mean 'entry_point'" in result.err
    assert "Traceback" not in result.err


def test_unknown_target_is_a_usage_error(project: ProjectDir) -> None:
    make_chain(project)

    result = project.run("trian")

    assert result.code == 2
    assert "unknown task 'trian'; did you mean 'train'?" in result.err


def test_logs_prints_the_last_jobs_logs_by_host(project: ProjectDir) -> None:
    project.ssmfile(
        """
        [tasks.talk]
        entry_point = "talk.py"
        instance_count = 2
        """
    )
    project.write("talk.py", "import os\nprint('hello from', os.environ['SM_CURRENT_HOST'])\n")
    assert project.run().code == 0

    result = project.run("logs", "talk")

    assert result.code == 0
    assert "[algo-1] hello from algo-1" in result.out
    assert "[algo-2] hello from algo-2" in result.out


def test_graph_formats(project: ProjectDir) -> None:
    make_chain(project)

    dot = project.run("graph", "--format", "dot").out
    mermaid = project.run("graph", "--format", "mermaid").out

    assert '"prepare" -> "train" [label="model, state"];' in dot
    assert '"train" -> "report" [label="output"];' in dot
    assert "prepare -->|model, state| train" in mermaid


def test_download_command_extracts_results(project: ProjectDir) -> None:
    make_chain(project)
    assert project.run("prepare").code == 0

    result = project.run("download", "prepare", "-o", "got", "--model", "--state")

    assert result.code == 0, result.err
    assert sorted(p.name for p in (project.root / "got/model").iterdir()) == [
        "seen-algo-1.json",
        "seen-algo-2.json",
    ]
    assert (project.root / "got/state/algo-1/runs").read_text() == "1"


def test_init_writes_a_project_that_builds(project: ProjectDir) -> None:
    init = project.run("init")
    assert init.code == 0

    result = project.run()

    assert result.code == 0, result.err
    assert (project.root / "output/train/model/model.json").exists()
    assert project.run("init").code == 2


def test_input_upload_reports_byte_progress_and_skips_unchanged_files(
    project: ProjectDir,
) -> None:
    project.ssmfile(
        """
        [tasks.big]
        entry_point = "w.py"
        inputs.data = { path = "data" }
        """
    )
    project.write("w.py", "pass\n")
    for i in range(20):
        (project.root / "data").mkdir(exist_ok=True)
        (project.root / f"data/part{i}.bin").write_bytes(bytes(100_000))

    first = project.run()
    project.write("data/part0.bin", "changed")
    second = project.run()

    assert first.code == 0, first.err
    progress = [ln for ln in first.err.splitlines() if "uploading input data" in ln]
    # Piped: a line per phase, in human units.
    assert progress == ["ssmake: big: uploading input data (up to 1.9 MiB)"]
    assert "input data: 20 uploaded (1.9 MiB), 0 deleted, 0 unchanged" in first.err
    assert "input data: 1 uploaded (7 B), 0 deleted, 19 unchanged" in second.err
