"""Bringing a task's results back next to the project: model, output, state, logs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ssmake import layout
from ssmake.archive import extract
from ssmake.errors import StoreError
from ssmake.store import Store

STAMP = ".ssmake-job"


def download_results(
    store: Store,
    project: str,
    task: str,
    marker: dict[str, Any],
    dest: Path,
    kinds: Collection[str],
) -> list[Path]:
    """Extract the marker's outputs into `dest/<kind>/` (logs into `dest/logs/logs<i>`).

    Each part is fetched into a temporary directory and moved into place only when
    complete, so an interrupted download never looks like a finished one.
    """
    written: list[Path] = []
    dest.mkdir(parents=True, exist_ok=True)
    job = str(marker.get("job", ""))
    outputs = marker.get("outputs") or {}
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp_name:
        tmp = Path(tmp_name)
        for kind in kinds:
            target = dest / kind
            if kind in ("model", "output"):
                info = outputs.get(kind)
                if not isinstance(info, dict):
                    raise StoreError(f"task {task} has no {kind} output in its marker")
                tarball = tmp / f"{kind}.tar.gz"
                store.get_file(str(info["key"]), tarball)
                extract(tarball, target)
            elif kind == "state":
                staged = tmp / "state"
                prefix = layout.state_prefix(project, task)
                for obj in store.list(prefix):
                    store.get_file(obj.key, staged / obj.key[len(prefix) :])
                staged.mkdir(exist_ok=True)
                _replace(staged, target)
            elif kind == "logs":
                staged = tmp / "logs"
                staged.mkdir()
                prefix = layout.logs_prefix(project, task, job)
                for obj in store.list(prefix):
                    name = obj.key[len(prefix) :]
                    if name.startswith("algo-") and name.endswith(".log"):
                        index = int(name[len("algo-") : -len(".log")]) - 1
                        store.get_file(obj.key, staged / f"logs{index}")
                _replace(staged, target)
            written.append(target)
    (dest / STAMP).write_text(job)
    return written


def _replace(staged: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    staged.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def downloaded_job(dest: Path) -> str | None:
    """The job whose results `dest` holds, if a download finished there."""
    try:
        return (dest / STAMP).read_text().strip() or None
    except OSError:
        return None
