"""`ssmake --check` from another shell while `ssmake watch` runs: answered from the
watcher's state over .ssmake/watch.sock while it knows, planned as usual otherwise."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ProjectDir

from ssmake.build.watch import Watcher
from ssmake.plan import quick
from ssmake.ui.report import PlainWatchView

SSMFILE = """
[project]
name = "ans"

[tasks.a]
source_dir = "a"
entry_point = "main.py"

[tasks.b]
entry_point = "b.py"
inputs.m = { task = "a", output = "model" }
"""
WORKER = "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm'), 'w').write('m')\n"
BOUND = 20.0


@pytest.fixture
def watching(project: ProjectDir) -> Iterator[Watcher]:
    project.ssmfile(SSMFILE)
    project.write("a/main.py", WORKER)
    project.write("b.py", WORKER)
    watcher = Watcher(project.root, view=PlainWatchView(io.StringIO()))
    watcher.start()
    try:
        assert watcher.wait_until(lambda: len(watcher.builds) == 1 and watcher.idle, BOUND)
        yield watcher
    finally:
        watcher.stop()


def rebuilt(watcher: Watcher, count: int) -> bool:
    return watcher.wait_until(lambda: len(watcher.builds) >= count and watcher.idle, BOUND)


def test_the_watcher_answers_while_it_knows(watching: Watcher, project: ProjectDir) -> None:
    root = str(project.root)
    assert (project.root / ".ssmake/watch.sock").exists()
    assert quick.ask_watcher(root) is True
    assert project.run("--check").code == 0

    # A save: unsure until the watcher has built again, then up to date again.
    project.write("a/main.py", WORKER + "# v2\n")
    assert rebuilt(watching, 2)
    assert quick.ask_watcher(root) is True

    # Another shell forgets a result: the watcher's knowledge no longer holds.
    assert project.run("clean", "b").code == 0
    assert quick.ask_watcher(root) is False
    assert project.run("--check").code == 1


def test_no_answer_without_a_watcher_or_for_a_part_of_the_project(project: ProjectDir) -> None:
    project.ssmfile(SSMFILE)
    project.write("a/main.py", WORKER)
    project.write("b.py", WORKER)
    assert quick.ask_watcher(str(project.root)) is None
    watcher = Watcher(project.root, targets=["a"], view=PlainWatchView(io.StringIO()))
    watcher.start()
    try:
        assert rebuilt(watcher, 1)
        # It watches a only: it cannot vouch for b, which --check also checks.
        assert quick.ask_watcher(str(project.root)) is False
    finally:
        watcher.stop()
    assert not (project.root / ".ssmake/watch.sock").exists()
    assert quick.ask_watcher(str(project.root)) is None


def test_a_long_project_path_still_gets_a_socket(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 5)
    deep.mkdir(parents=True)
    project = ProjectDir(deep)
    project.ssmfile(SSMFILE)
    project.write("a/main.py", WORKER)
    project.write("b.py", WORKER)
    watcher = Watcher(deep, view=PlainWatchView(io.StringIO()))
    watcher.start()
    try:
        assert rebuilt(watcher, 1)
        assert len(str(deep / ".ssmake/watch.sock")) > 108
        assert quick.ask_watcher(str(deep)) is True
    finally:
        watcher.stop()
