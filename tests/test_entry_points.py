"""Entry points the toolkit runs other than as `python -- SCRIPT`: a command (any
non-.py file) as `/bin/sh -c ./ENTRY ARGS`, a source_dir with a setup.py
installed first and run as `python -m MODULE ARGS`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import ProjectDir

SSMFILE = """
[project]
name = "entries"

[tasks.job]
source_dir = "code"
entry_point = "{entry}"
hyperparameters = {{ greeting = "hello world", n = 2 }}
download = ["model", "logs"]
output_path = "out"
"""

SCRIPT = """#!/bin/sh
printf '%s\n' "$@" > "$SM_MODEL_DIR/args"
"""

MODULE = """
import sys
from pathlib import Path
import helper

Path(helper.model_dir(), "ran").write_text(__name__ + " " + repr(sys.argv[1:]))
"""

HELPER = """
import os

def model_dir():
    return os.environ["SM_MODEL_DIR"]
"""

SETUP = """
from setuptools import setup
setup(name="entries-demo", version="0.1", py_modules=["helper"])
"""


def test_a_shell_entry_point_runs_as_a_command(project: ProjectDir) -> None:
    project.ssmfile(SSMFILE.format(entry="train.sh"))
    project.write("code/train.sh", SCRIPT)

    result = project.run()

    assert result.code == 0, result.err
    # Each argument arrives whole, quoted for the one shell that reads them.
    args = (project.root / "out" / "model" / "args").read_text().splitlines()
    assert args == ["--greeting", "hello world", "-n", "2"]
    log = (project.root / "out" / "logs" / "logs0").read_text()
    assert "/bin/sh -c ./train.sh --greeting 'hello world' -n 2" in log


def test_a_source_dir_with_setup_py_is_installed_then_run_as_a_module(
    project: ProjectDir,
) -> None:
    project.ssmfile(SSMFILE.format(entry="train.py"))
    project.write("code/train.py", MODULE)
    project.write("code/helper.py", HELPER)
    project.write("code/setup.py", SETUP)

    result = project.run()

    assert result.code == 0, result.err
    ran = (project.root / "out" / "model" / "ran").read_text()
    assert ran == "__main__ ['--greeting', 'hello world', '-n', '2']"
    log = (project.root / "out" / "logs" / "logs0").read_text()
    assert "Installing the source directory, which has a setup.py" in log
    assert " -m train --greeting hello world -n 2" in log
