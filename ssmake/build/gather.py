"""A gathering input: one channel holding the result of every expansion of a
matrix task, each in a subdirectory named by the expansion's slug
(`models/train-depth-3-lr-0-1/model.tar.gz`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ssmake.errors import TaskFailed
from ssmake.plan import layout
from ssmake.project.matrix import slug
from ssmake.project.model import Input, Task
from ssmake.stores import Store


def gather_channel(
    store: Store,
    project: str,
    task: Task,
    inp: Input,
    upstream: Mapping[str, Mapping[str, Any] | None],
    work_dir: Path,
) -> str:
    """Copy each expansion's tarball under the task's input prefix (those already
    there with the same ETag stay), drop those of expansions no longer gathered,
    and return the channel's URI."""
    prefix = layout.input_prefix(project, task.name) + inp.name + "/"
    wanted: set[str] = set()
    work_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=work_dir, prefix="gather-"))
    try:
        for name in inp.gather:
            marker = upstream.get(name)
            if marker is None:
                raise TaskFailed(f"task {task.name}: upstream {name} has no result")
            source = marker["outputs"][inp.output]
            key = f"{prefix}{slug(name)}/{inp.output}.tar.gz"
            wanted.add(key)
            there = store.info(key)
            if there is not None and there.etag == source.get("etag"):
                continue
            local = scratch / f"{slug(name)}.tar.gz"
            store.get_file(str(source["key"]), local)
            store.put_file(key, local)
            local.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for obj in list(store.list(prefix)):
        if obj.key not in wanted:
            store.delete(obj.key)
    return store.uri(prefix)
