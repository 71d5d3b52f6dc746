"""A newcomer's first commands: options anywhere, the Ssmfile found from a
subdirectory, help, version, shell completion, init and graph."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import ProjectDir, Result

from ssmake.cli import main
from ssmake.commands.init import SSMFILE

TWO = """
[project]
name = "demo"

[tasks.prepare]
entry_point = "prepare.py"

[tasks.train]
entry_point = "train.py"
inputs.prepared = { task = "prepare", output = "model" }
after = ["prepare"]
"""
WORKER = "from worker_toolkit import worker_lib\nargs = worker_lib.parseArgs()\nprint('ok')\n"


def ssmake(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def two(project: ProjectDir) -> ProjectDir:
    project.ssmfile(TWO)
    project.write("prepare.py", WORKER)
    project.write("train.py", WORKER)
    return project


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "train"],
        ["status"],
        ["graph"],
        ["clean", "train"],
        ["run", "-n"],
        ["-n"],
        ["train", "-n"],
    ],
)
def test_global_options_before_the_command(
    two: ProjectDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    before = ssmake("-C", str(two.root), "-q", *argv)
    after = ssmake(*argv, "-C", str(two.root), "-q")

    assert before.code == 0, before.err
    assert "unknown task" not in before.err
    assert (before.code, before.out) == (after.code, after.out)


def test_logs_and_download_take_global_options_first(
    two: ProjectDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert two.run("prepare").code == 0
    monkeypatch.chdir(tmp_path)

    logs = ssmake("-C", str(two.root), "logs", "prepare")
    download = ssmake("-C", str(two.root), "download", "prepare", "-o", str(tmp_path / "got"))

    assert logs.code == 0 and "ok" in logs.out
    assert download.code == 0 and (tmp_path / "got" / "model").is_dir()


def test_the_ssmfile_is_found_in_a_parent_directory(
    two: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = two.root / "notebooks" / "deep"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)

    result = ssmake("-v", "-n")
    quiet = ssmake("status")

    assert result.code == 0, result.err
    assert f"ssmake: using {two.root / 'Ssmfile.toml'}" in result.err
    assert "prepare" in result.out
    assert quiet.code == 0 and "using" not in quiet.err


def test_no_ssmfile_anywhere_names_the_directory(tmp_path: Path) -> None:
    result = ssmake("-C", str(tmp_path), "status")

    assert result.code == 2
    assert str(tmp_path / "Ssmfile.toml") in result.err or "Ssmfile.toml" in result.err


def test_help_lists_version_and_the_run_flags() -> None:
    result = ssmake("--help")
    version = ssmake("--version")

    assert result.code == 0
    for flag in ("--version", "-n, --dry-run", "-j, --jobs N", "-k, --keep-going", "-B, --force"):
        assert flag in result.out
    assert "--check" in result.out and "completion" in result.out
    assert version.code == 0 and version.out.startswith("ssmake 0.")


def _complete(root: Path, line: str, tmp_path: Path) -> list[str]:
    """What bash completes for `line` with ssmake's completion script loaded."""
    script = tmp_path / "ssmake.bash"
    assert ssmake("completion", "bash").code == 0
    script.write_text(ssmake("completion", "bash").out)
    here = Path(__file__).resolve().parents[1]
    words = line.split(" ")
    program = f"""
ssmake() {{ PYTHONPATH={here} {sys.executable} -m ssmake.cli "$@"; }}
source {script}
COMP_WORDS=({" ".join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
_ssmake
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(
        ["bash", "-c", program], cwd=root, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_options_and_task_names(two: ProjectDir, tmp_path: Path) -> None:
    assert _complete(two.root, "ssmake ex", tmp_path) == ["explain"]
    assert sorted(_complete(two.root, "ssmake explain ", tmp_path)) == ["prepare", "train"]
    assert _complete(two.root, "ssmake tr", tmp_path) == ["train"]
    assert "--keep-going" in _complete(two.root, "ssmake --k", tmp_path)
    assert _complete(two.root, "ssmake graph --format s", tmp_path) == ["svg"]
    assert _complete(two.root, "ssmake logs prepare --j", tmp_path) == ["--job"]
    assert _complete(two.root, "ssmake completion z", tmp_path) == ["zsh"]


def test_zsh_completion_loads_bash_completion() -> None:
    result = ssmake("completion", "zsh")

    assert result.code == 0
    assert "bashcompinit" in result.out and "complete -F _ssmake ssmake" in result.out


def test_init_writes_the_project_name_and_the_readme_shows_it(tmp_path: Path) -> None:
    root = tmp_path / "my demo"
    root.mkdir()

    result = ssmake("init", "-C", str(root))

    assert result.code == 0, result.err
    text = (root / "Ssmfile.toml").read_text()
    assert 'name = "my-demo"' in text
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert SSMFILE.replace("__NAME__", "demo") in readme
    assert ssmake("-C", str(root), "-q").code == 0


def test_graph_colours_states_and_labels_what_flows(two: ProjectDir) -> None:
    assert two.run("prepare").code == 0

    text = two.run("graph").out
    dot = two.run("graph", "--format", "dot").out
    mermaid = two.run("graph", "--format", "mermaid").out

    assert "prepare  up-to-date" in text
    assert "train    stale       <- prepare (model, after)" in text
    assert '"prepare" -> "train" [label="model, after"];' in dot
    assert 'fillcolor="#d9f2d9"' in dot and 'fillcolor="#fff3cd"' in dot
    assert "prepare -->|model, after| train" in mermaid


def test_graph_svg_without_graphviz_says_how_to_install_it(
    two: ProjectDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    result = two.run("graph", "--format", "svg")

    assert result.code == 2
    assert "install graphviz" in result.err and "--format dot" in result.err


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs graphviz")
def test_graph_svg_with_graphviz(two: ProjectDir) -> None:
    result = two.run("graph", "--format", "svg", "-o", "g.svg")

    assert result.code == 0, result.err
    assert "<svg" in (two.root / "g.svg").read_text()


def test_no_color_removes_all_styling_from_a_terminal(two: ProjectDir) -> None:
    here = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(here), "NO_COLOR": "1", "TERM": "xterm"}
    argv = ["-C", str(two.root), "graph"]
    code = f"import sys; from ssmake.cli import main; sys.exit(main({argv!r}))"
    done = subprocess.run(
        ["script", "-qec", f'{sys.executable} -c "{code}"', "/dev/null"],
        capture_output=True,
        env=env,
        check=False,
    )
    assert b"stale" in done.stdout
    assert b"\x1b[" not in done.stdout
