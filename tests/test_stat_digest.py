"""The stat digest: a no-op plan answered from files' identities on disk, never a
different verdict from the one hashing gives."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from conftest import ProjectDir

from ssmake.plan import quick

WORKER = "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm'), 'w').write('m')\n"
TASKS = ("same", "replaced", "added", "param", "rerun", "touched", "ignored")


def make(project: ProjectDir) -> None:
    lines = ['[project]\nname = "dig"\n']
    for name in TASKS:
        lines.append(
            f'[tasks.{name}]\nsource_dir = "{name}"\nentry_point = "main.py"\n'
            f"hyperparameters = {{ v = 1 }}\n"
        )
        project.write(f"{name}/main.py", WORKER)
        project.write(f"{name}/util.py", "X = 1\n")
    project.ssmfile("\n".join(lines))
    project.write(".gitignore", "*.log\n")
    assert project.run("-q").code == 0


def freshen(project: ProjectDir) -> None:
    """Change every file's ctime to now: within the racy window again (a slow
    machine may have taken longer than the window to build)."""
    for path in project.root.rglob("*.py"):
        if ".ssmake" not in path.parts:
            os.utime(path)


def settle() -> None:
    # Past the racy window: a file changed within it could keep its size and times.
    time.sleep(2.1)


def recorded(project: ProjectDir) -> set[str]:
    path = project.root / ".ssmake/cache/stat-digests.json"
    return set(json.loads(path.read_text())["tasks"]) if path.exists() else set()


def stale(project: ProjectDir) -> list[str]:
    result = project.run("--check")
    return sorted(re.findall(r"^(\w+): stale", result.err, re.MULTILINE))


def test_files_within_the_racy_window_are_not_recorded(project: ProjectDir) -> None:
    make(project)
    freshen(project)

    assert project.run("--check").code == 0
    assert recorded(project) == set()


def test_a_settled_check_is_answered_without_the_hash_cache(project: ProjectDir) -> None:
    make(project)
    settle()
    assert project.run("--check").code == 0
    assert recorded(project) == set(TASKS)
    hashes = project.root / ".ssmake/cache/hashes.bin"
    hashes.unlink()

    assert project.run("--check").code == 0
    # Nothing was hashed, so no hash cache was written.
    assert not hashes.exists()


def test_every_change_after_recording_is_seen(project: ProjectDir) -> None:
    make(project)
    settle()
    assert project.run("--check").code == 0
    assert recorded(project) == set(TASKS)
    old_job = re.search(r"rerun\s+up-to-date\s+\[(\S+)\]", project.run("status").out)

    # Same size and mtime, other content, a new inode (an editor's save-by-rename).
    util = project.root / "replaced/util.py"
    st = util.stat()
    tmp = util.with_name("util.py.new")
    tmp.write_text("X = 2\n")
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    tmp.replace(util)
    added = project.write("added/extra.py", "Z = 1\n")
    os.utime(added, ns=(st.st_atime_ns, st.st_mtime_ns))
    ssmfile = project.root / "Ssmfile.toml"
    text = ssmfile.read_text()
    start = text.index("[tasks.param]")
    ssmfile.write_text(text[:start] + text[start:].replace("v = 1", "v = 2", 1))
    os.utime(project.root / "touched/util.py")
    project.write("ignored/debug.log", "noise\n")
    assert project.run("-q", "-B", "rerun").code == 0

    assert stale(project) == ["added", "param", "replaced"]
    new_job = re.search(r"rerun\s+up-to-date\s+\[(\S+)\]", project.run("status").out)
    assert old_job is not None and new_job is not None
    assert new_job.group(1) != old_job.group(1)


def test_a_missing_output_makes_a_recorded_task_stale(project: ProjectDir) -> None:
    make(project)
    settle()
    assert project.run("--check").code == 0
    marker = json.loads((project.store("dig", "same", "ssmake.json")).read_text())
    Path(project.store(marker["outputs"]["model"]["key"])).unlink()

    assert stale(project) == ["same"]
    assert "its model is missing from the store" in project.run("explain", "same").out


def test_the_quick_check_answers_only_while_everything_holds(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(project)
    freshen(project)
    assert project.run("--check").code == 0
    assert not (project.root / ".ssmake/cache/check.json").exists()  # the racy window
    settle()
    assert project.run("--check").code == 0
    root = str(project.root)
    assert quick.up_to_date(root)
    # Half the tasks are checked in a forked process when the project is large:
    # a change in any task, whichever half it falls in, means "not sure".
    monkeypatch.setattr(quick, "FORK_MIN_FILES", 0)
    for name in TASKS:
        extra = project.write(f"{name}/extra.py", "Z = 1\n")
        assert not quick.up_to_date(root)
        extra.unlink()
        assert quick.up_to_date(root)

    os.utime(project.root / "touched/util.py")  # the same content, a new mtime
    assert not quick.up_to_date(root)
    assert project.run("--check").code == 0  # the full plan decides: up to date
    ssmfile = project.root / "Ssmfile.toml"
    ssmfile.write_text(ssmfile.read_text() + "\n# a comment\n")
    assert not quick.up_to_date(root)
    assert project.run("--check").code == 0
