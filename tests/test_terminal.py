"""What a person sees in a terminal: ssmake under a pseudo-terminal, its screen
rendered by a terminal emulator (pyte) at 80x24 and 120x40."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ProjectDir
from terminal import run_in_terminal

WORKER = """
import time
from worker_toolkit import worker_lib
args = worker_lib.parseArgs()
print("[info] working [/bold] on", args.hps)
time.sleep(float(args.hps.get("sleep", 0)))
"""
BAD = "print('[warning] about to fail [/bold] :smile:')\nraise ValueError('bad [/red] value')\n"


def many(project: ProjectDir, count: int, *, bad: bool = False) -> Path:
    text = '[project]\nname = "demo"\n[defaults]\nentry_point = "w.py"\n'
    if bad:
        text += '[tasks.bad]\nentry_point = "bad.py"\n'
    for i in range(count):
        text += f"[tasks.t{i:02d}]\nhyperparameters = {{ n = {i} }}\n"
    project.ssmfile(text)
    project.write("w.py", WORKER)
    project.write("bad.py", BAD)
    return project.root


def test_more_tasks_than_rows_fold_into_a_summary(project: ProjectDir) -> None:
    root = many(project, 30, bad=True)

    term = run_in_terminal(["-k", "-j", "4"], root, cols=80, rows=24)

    assert term.code == 1
    board = term.screen
    assert any(re.fullmatch(r"ssmake  30/31 done  0:00:\d\d", line) for line in board), board
    assert any(line.startswith("bad  failed") for line in board), board
    assert any(re.fullmatch(r"30 done, 1 failed, 0:00:\d\d", line) for line in board), board


def test_everything_fits_on_a_large_terminal(project: ProjectDir) -> None:
    root = many(project, 6)
    assert project.run("t00", "-q").code == 0

    term = run_in_terminal(["-j", "2"], root, cols=120, rows=40)

    assert term.code == 0
    assert "ssmake  6/6 done" in term.text
    assert re.search(r"^t00\s+up to date\s+t00-", term.text, re.M)
    assert re.search(r"^t05\s+done\s+\d", term.text, re.M)
    # Each task's log prefix in its own colour with -j: more than one colour is used.
    colours = set(re.findall(rb"\x1b\[([0-9;]+)m\[t0\d algo-1\]", term.output))
    assert len(colours) > 1


def test_a_failure_with_markup_like_text_is_shown_literally(project: ProjectDir) -> None:
    root = many(project, 0, bad=True)

    term = run_in_terminal(["bad"], root, cols=120, rows=40)

    assert term.code == 1
    assert "[bad algo-1] [warning] about to fail [/bold] :smile:" in term.text
    assert "ValueError: bad [/red] value" in term.text
    assert "ssmake: bad: FAILED: task bad: job bad-" in term.text
    assert term.text.count("ValueError: bad [/red] value") == 1
    assert "MarkupError" not in term.text and "internal error" not in term.text


def test_ctrl_c_shows_stopping(project: ProjectDir) -> None:
    project.ssmfile('[tasks.slow]\nentry_point = "w.py"\nhyperparameters = { sleep = 30 }\n')
    project.write("w.py", WORKER)

    term = run_in_terminal(
        ["slow"],
        project.root,
        send=(lambda screen: "working" in "\n".join(screen.display), b"\x03"),
        env={"SSMAKE_STOP_GRACE_SECONDS": "2"},
    )

    assert term.code == 130
    assert "stopping (Ctrl-C)" in term.text
    assert re.search(r"^slow\s+stopped", term.text, re.M) or "interrupted" in term.text


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_no_color_removes_all_styling(project: ProjectDir, size: tuple[int, int]) -> None:
    root = many(project, 3, bad=True)

    term = run_in_terminal(["-k"], root, cols=size[0], rows=size[1], env={"NO_COLOR": "1"})

    assert term.code == 1
    assert "ssmake  3/4 done" in term.text
    assert not re.search(rb"\x1b\[[0-9;]*m", term.output)


def test_watch_uses_the_same_board(project: ProjectDir) -> None:
    root = many(project, 2)

    term = run_in_terminal(
        ["watch"],
        root,
        cols=80,
        rows=24,
        send=(lambda screen: "2/2 done" in "\n".join(screen.display), b"\x03"),
    )

    assert term.code == 130
    assert re.search(r"ssmake watch  2/2 done  0:00:\d\d  build 1", term.text)
