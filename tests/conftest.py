"""Shared fixtures: a `project` that writes files into tmp_path and runs the CLI in-process."""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from ssmake.cli import COMMANDS, main


@dataclass
class Result:
    code: int
    out: str
    err: str


class ProjectDir:
    """A project directory in tmp_path; `run(...)` is `ssmake ...` in it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def ssmfile(self, text: str) -> Path:
        return self.write("Ssmfile.toml", text)

    def run(self, *args: str) -> Result:
        command, rest = (args[0], args[1:]) if args and args[0] in COMMANDS else ("run", args)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main([command, "-C", str(self.root), *rest])
        return Result(code, out.getvalue(), err.getvalue())

    def store(self, *parts: str) -> Path:
        return self.root.joinpath(".ssmake", *parts)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectDir]:
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    # Fast stops in tests; the default grace period is SageMaker's 120 s.
    monkeypatch.setenv("SSMAKE_STOP_GRACE_SECONDS", "2")
    yield ProjectDir(root)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never reach AWS: without the moto fixture there are no credentials.
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_ENDPOINT_URL":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


# AWS fixtures (a moto server on 127.0.0.1, fake credentials, the SageMaker emulator).
from aws_fixtures import *  # noqa: E402, F403
