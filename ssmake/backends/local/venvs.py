"""Cached virtualenvs for tasks with a requirements.txt, keyed by its content.

The venv sees the system site packages (ssmake's interpreter plays the part of
the framework image), and is built once under a lock, then reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ssmake.errors import RequirementsFailed


def python_for_requirements(
    requirements: Path,
    cache: Path,
    *,
    base_python: str = sys.executable,
    on_log: Callable[[str], None] = lambda line: None,
) -> str:
    """The interpreter a job runs with: `base_python`, or a cached venv with the
    requirements installed when the code has a non-empty requirements.txt."""
    if not requirements.is_file():
        return base_python
    content = requirements.read_bytes()
    lines = [ln.strip() for ln in content.decode(errors="replace").splitlines()]
    if not any(ln and not ln.startswith("#") for ln in lines):
        return base_python
    version = subprocess.run(
        [base_python, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    key = hashlib.sha256(content + base_python.encode() + version.encode()).hexdigest()[:16]
    venv = cache / key
    python = venv / "bin" / "python"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".ssmake-complete").is_file():
            return str(python)
        shutil.rmtree(venv, ignore_errors=True)
        on_log(f"Installing requirements into a cached virtualenv ({venv})")
        steps = [
            [base_python, "-m", "venv", "--system-site-packages", str(venv)],
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--progress-bar",
                "off",
                "-r",
                str(requirements),
            ],
        ]
        for cmd in steps:
            # pip's lines go to the job's log as they come: the board shows where
            # an install is (Collecting..., Installing...), and a failure's words.
            said: list[str] = []
            with subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            ) as proc:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    said.append(raw.rstrip("\n"))
                    on_log(said[-1])
            if proc.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                # pip's own words, not the cached venv's interpreter path.
                errors = [ln for ln in said if ln.startswith("ERROR:")] or said[-1:]
                tool = "pip install -r requirements.txt" if "pip" in cmd else "python -m venv"
                error = errors[0] if errors else "no output"
                raise RequirementsFailed(f"{tool} failed: {error}", log_tail=tuple(said[-20:]))
        (venv / ".ssmake-complete").write_text(content.decode(errors="replace"))
    return str(python)
