"""Incremental rebuilds: exactly the tasks whose inputs changed run again."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest
from conftest import ProjectDir, Result

from ssmake.plan.hashcache import MAGIC, HashTable, identity

SSMFILE = """
[project]
name = "inc"

[tasks.a]
source_dir = "a"
entry_point = "main.py"
dependencies = ["lib"]
requirements = "reqs/a.txt"
inputs.data = { path = "data" }
hyperparameters = { lr = 1 }
environment = { MODE = "x" }
instance_type = "ml.m5.large"
spot = true
max_run_mins = 60
volume_size = 30
tags = { team = "x" }

[tasks.b]
entry_point = "b.py"
inputs.a_model = { task = "a", output = "model" }

[tasks.c]
entry_point = "c.py"
dockerfile = "docker"
"""

# The model names its job, so a rerun's outputs differ and its downstream reruns
# (byte-identical outputs would not rerun it: see test_early_cutoff).
WORKER = (
    "from pathlib import Path\nimport os\n"
    "Path(os.environ['SM_MODEL_DIR'], 'm').write_text(os.environ['TRAINING_JOB_NAME'])\n"
)


def launched(result: Result) -> list[str]:
    return sorted(re.findall(r"ssmake: (\S+): launched job", result.err))


@pytest.fixture
def inc(project: ProjectDir) -> ProjectDir:
    project.ssmfile(SSMFILE)
    project.write("a/main.py", WORKER)
    project.write("a/util.py", "X = 1\n")
    project.write("lib/helper.py", "Y = 1\n")
    project.write("reqs/a.txt", "# no packages\n")
    project.write("data/d1.txt", "one\n")
    project.write("data/d2.txt", "two\n")
    project.write("b.py", WORKER)
    project.write("c.py", WORKER)
    project.write("docker/Dockerfile", "FROM __BASE_IMAGE__\nRUN true\n")
    project.write("docker/ctx.txt", "context\n")
    project.write(".gitignore", "*.log\nscratch/\n")
    first = project.run()
    assert first.code == 0, first.err
    assert launched(first) == ["a", "b", "c"]
    return project


def edit_ssmfile(project: ProjectDir, old: str, new: str) -> None:
    path = project.root / "Ssmfile.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.write("a/util.py", "X = 2\n"), ["a", "b"]),
        (lambda p: p.write("a/new_module.py", "Z = 1\n"), ["a", "b"]),
        (lambda p: (p.root / "a/util.py").unlink(), ["a", "b"]),
        (lambda p: p.write("lib/helper.py", "Y = 2\n"), ["a", "b"]),
        (lambda p: p.write("reqs/a.txt", "# still none\n"), ["a", "b"]),
        (lambda p: p.write("data/d3.txt", "three\n"), ["a", "b"]),
        (lambda p: p.write("data/d1.txt", "uno\n"), ["a", "b"]),
        (lambda p: p.write("b.py", WORKER + "# edit\n"), ["b"]),
        (lambda p: p.write("docker/Dockerfile", "FROM __BASE_IMAGE__\nRUN false\n"), ["c"]),
        (lambda p: p.write("docker/ctx.txt", "new context\n"), ["c"]),
        (lambda p: edit_ssmfile(p, "lr = 1", "lr = 2"), ["a", "b"]),
        (lambda p: edit_ssmfile(p, 'MODE = "x"', 'MODE = "y"'), ["a", "b"]),
        (
            lambda p: edit_ssmfile(p, '"data" }', '"data", distribution = "ShardedByS3Key" }'),
            ["a", "b"],
        ),
        (
            lambda p: edit_ssmfile(
                p, 'entry_point = "c.py"', 'entry_point = "c.py"\ninstance_count = 2'
            ),
            ["c"],
        ),
    ],
    ids=[
        "code-edit",
        "code-add",
        "code-delete",
        "dependency",
        "requirements",
        "input-add",
        "input-edit",
        "downstream-code",
        "dockerfile",
        "build-context",
        "hyperparameter",
        "environment",
        "distribution",
        "instance-count",
    ],
)
def test_a_change_reruns_the_task_and_its_downstream_only(
    inc: ProjectDir, change, expected
) -> None:  # type: ignore[no-untyped-def]
    change(inc)

    result = inc.run()

    assert result.code == 0, result.err
    assert launched(result) == expected


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('instance_type = "ml.m5.large"', 'instance_type = "ml.p3.2xlarge"'),
        ("spot = true", "spot = false"),
        ("max_run_mins = 60", "max_run_mins = 120"),
        ("volume_size = 30", "volume_size = 100"),
        ('tags = { team = "x" }', 'tags = { team = "y" }'),
        (
            'entry_point = "b.py"',
            'entry_point = "b.py"\ndownload = ["model"]\noutput_path = "out/b"',
        ),
    ],
    ids=["instance_type", "spot", "max_run", "volume_size", "tags", "download"],
)
def test_changing_an_excluded_setting_reruns_nothing(inc: ProjectDir, old: str, new: str) -> None:
    edit_ssmfile(inc, old, new)

    result = inc.run()

    assert result.code == 0, result.err
    assert launched(result) == []


def test_touching_a_file_or_editing_ignored_files_reruns_nothing(inc: ProjectDir) -> None:
    st = (inc.root / "a/util.py").stat()
    os.utime(inc.root / "a/util.py", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    inc.write("a/debug.log", "noise\n")
    inc.write("a/scratch/tmp.py", "noise\n")
    inc.write(".ssmakeignore", "a/*.bak\n")
    inc.write("a/old.bak", "noise\n")
    inc.write("a/__pycache__/x.pyc", "noise\n")
    # (An ignore rule does not reach inside an input: its files are data.)

    result = inc.run()

    assert result.code == 0, result.err
    assert launched(result) == []


def test_reverting_an_edit_restores_the_earlier_result_without_running(inc: ProjectDir) -> None:
    edit_ssmfile(
        inc,
        'entry_point = "b.py"',
        'entry_point = "b.py"\ndownload = ["model"]\noutput_path = "out/b"',
    )
    assert launched(inc.run()) == []
    first_job = json.loads(inc.store("inc", "a", "ssmake.json").read_text())["job"]
    first_b = json.loads(inc.store("inc", "b", "ssmake.json").read_text())["job"]
    inc.write("a/util.py", "X = 2\n")
    assert launched(inc.run()) == ["a", "b"]
    inc.write("a/util.py", "X = 1\n")

    result = inc.run()

    assert result.code == 0, result.err
    assert launched(result) == []
    assert "a: restored from an earlier run" in result.err
    assert "b: restored from an earlier run" in result.err
    assert json.loads(inc.store("inc", "a", "ssmake.json").read_text())["job"] == first_job
    assert (inc.root / "out/b/model/m").read_text() == first_b
    assert inc.run("--check").code == 0


def test_force_reruns_the_named_task_and_its_downstream(inc: ProjectDir) -> None:
    result = inc.run("-B", "a")

    assert result.code == 0, result.err
    assert launched(result) == ["a"]
    # b is not a target, but its input changed: the next build reruns it.
    assert launched(inc.run()) == ["b"]


def test_force_with_targets_including_downstream(inc: ProjectDir) -> None:
    result = inc.run("-B", "a", "b")

    assert launched(result) == ["a", "b"]


def test_explain_names_what_changed(inc: ProjectDir) -> None:
    inc.write("a/util.py", "X = 2\n")
    inc.write("data/d3.txt", "three\n")
    inc.write("data/d4.txt", "four\n")
    (inc.root / "data/d1.txt").unlink()
    edit_ssmfile(inc, "lr = 1", "lr = 0.01")

    a = inc.run("explain", "a")
    b = inc.run("explain", "b")

    assert a.code == 0
    assert "code: util.py changed" in a.out
    assert "input data: 2 files added, 1 removed" in a.out or (
        "input data: d3.txt added" in a.out and "input data: d1.txt removed" in a.out
    )
    assert "hyperparameters.lr: 1 -> 0.01" in a.out
    assert "upstream a will run first" in b.out


def test_explain_without_marker_and_after_upstream_ran(project: ProjectDir) -> None:
    project.ssmfile(
        """
        [tasks.up]
        entry_point = "w.py"
        [tasks.down]
        entry_point = "w.py"
        inputs.m = { task = "up" }
        """
    )
    project.write("w.py", WORKER)
    assert "no marker yet" in project.run("explain", "up").out
    assert project.run().code == 0
    assert project.run("-B", "up").code == 0

    out = project.run("explain", "down").out

    assert "upstream up has new outputs" in out


def test_marker_from_an_older_schema_reruns(inc: ProjectDir) -> None:
    path = inc.store("inc", "c", "ssmake.json")
    doc = json.loads(path.read_text())
    doc["schema"] = 0
    doc["components"]["schema"] = 0
    path.write_text(json.dumps(doc))
    for record in inc.store("inc", "c", "runs").iterdir():
        record.unlink()  # an older ssmake kept no run records

    assert "marker written by an older ssmake" in inc.run("explain", "c").out
    assert launched(inc.run()) == ["c"]


def test_status_and_check(inc: ProjectDir) -> None:
    assert inc.run("--check").code == 0
    inc.write("b.py", WORKER + "# edit\n")

    check = inc.run("--check")
    status = inc.run("status")

    assert check.code == 1
    assert "b: stale" in check.err
    assert re.search(r"^a\s+up-to-date", status.out, re.M)
    assert re.search(r"^b\s+stale\s+code: b.py changed", status.out, re.M)


def test_dry_run_json_after_a_change(inc: ProjectDir) -> None:
    inc.write("lib/helper.py", "Y = 3\n")

    doc = json.loads(inc.run("-n", "--json").out)

    states = {t["name"]: (t["state"], t["reasons"]) for t in doc["tasks"]}
    assert states["a"] == ("stale", ["code: lib/helper.py changed"])
    assert states["b"] == ("stale", ["upstream a will run first"])
    assert states["c"][0] == "up-to-date"
    c = next(t for t in doc["tasks"] if t["name"] == "c")
    assert c["fingerprint"] and c["job"]
    assert [t["name"] for t in doc["tasks"]] == ["a", "c", "b"]


def age_files(project: ProjectDir) -> None:
    """Let the files' times leave the racy window, so that their hashes may be cached
    (ctime cannot be dated back, so this waits it out)."""
    time.sleep(2.1)


def test_corrupt_hash_cache_is_rebuilt_not_trusted(inc: ProjectDir) -> None:
    age_files(inc)
    assert launched(inc.run()) == []
    cache = inc.root / ".ssmake/cache/hashes.bin"
    table = HashTable.read(cache)
    # A foreign entry that claims the current stat of a file but a wrong hash...
    util = str((inc.root / "a/util.py").resolve())
    table.put(util, identity(os.stat(util)), "0" * 64)
    written = table.to_bytes()
    version = len(MAGIC)
    # ... in a cache of another version: not trusted.
    cache.write_bytes(written[:version] + bytes([99]) + written[version + 1 :])
    digests = inc.root / ".ssmake/cache/stat-digests.json"

    digests.unlink()  # so that the plan hashes, through the cache
    assert launched(inc.run()) == []
    for damaged in (b"{not json", written[:-7], written + b"x", b""):
        cache.write_bytes(damaged)
        digests.unlink()
        assert launched(inc.run()) == []
    assert (
        HashTable.read(cache).get(util, identity(os.stat(util)))
        == hashlib.sha256((inc.root / "a/util.py").read_bytes()).hexdigest()
    )


def test_a_no_op_plan_reads_no_file_contents(inc: ProjectDir) -> None:
    from ssmake.build.session import open_session
    from ssmake.project.load import load_project

    age_files(inc)
    inc.run("--check")
    session = open_session(load_project(inc.root))
    plans = session.planner.plan([])
    session.close()

    assert [p.state for p in plans] == ["up-to-date"] * 3
    assert session.hashes.hashed_files == 0


def test_ssmake_json_marker_keeps_hashes_not_environment_values(inc: ProjectDir) -> None:
    text = inc.store("inc", "a", "ssmake.json").read_text()

    assert '"MODE"' in text
    assert '"x"' not in text.split('"environment"')[1].split("}")[0]


def test_clean_forgets_results(inc: ProjectDir) -> None:
    assert inc.run("clean", "c").code == 0

    assert launched(inc.run()) == ["c"]


def test_clean_removes_synced_inputs_and_with_state_the_state(inc: ProjectDir) -> None:
    assert inc.store("inc", "a", "input", "data", "d1.txt").is_file()
    inc.store("inc", "a", "state").mkdir(exist_ok=True)
    (inc.store("inc", "a", "state") / "ckpt").write_text("x")

    result = inc.run("clean", "a", "--state")

    assert result.code == 0
    assert "a: removed the marker, 1 run record(s) (" in result.err
    assert "synced input file(s) (" in result.err and "1 state file(s) (1 B)" in result.err
    assert "the jobs' outputs stay until 'ssmake gc'" in result.err
    assert not inc.store("inc", "a", "input").exists()
    assert not inc.store("inc", "a", "state").exists()
    assert launched(inc.run()) == ["a", "b"]


def test_editing_the_ssmfile_elsewhere_does_not_rerun(inc: ProjectDir) -> None:
    path = inc.root / "Ssmfile.toml"
    path.write_text("# a comment\n" + path.read_text())

    assert launched(inc.run()) == []


def test_file_outside_every_task_reruns_nothing(inc: ProjectDir) -> None:
    inc.write("notes/README.md", "notes\n")
    Path(inc.root / "notes/README.md").write_text("more notes\n")

    assert launched(inc.run()) == []


def test_editor_swap_and_backup_files_do_not_count(inc: ProjectDir) -> None:
    inc.write("a/.main.py.swp", "swap")
    inc.write("a/main.py~", "backup")
    inc.write("a/.#main.py", "lock")

    assert launched(inc.run()) == []
