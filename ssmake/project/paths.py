"""Paths compared as resolved paths: where `output_path` may point.

Every path key is resolved against the project root once, here, and compared
resolved: `sub/..`, `./out` and `out/` are the paths they lead to, not strings.
An `output_path` is a directory of its own: downloads never land in the project
root, the store, a task's code or image context, or a task's input, and never
hold one of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from ssmake.project import schema
from ssmake.project.model import Task


def resolved(root: Path, rel: str) -> Path:
    """A path key as the file system sees it: relative to the root, links resolved."""
    path = Path(os.path.expanduser(rel))
    return (path if path.is_absolute() else root / path).resolve()


def relative_to_root(root: Path, rel: str) -> str | None:
    """A path key as a project-relative posix path (None when outside the project)."""
    path = resolved(root, rel)
    if path == root:
        return "."
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else None


def _places(root: Path, tasks: Mapping[str, Task]) -> Iterator[tuple[Path, str, bool]]:
    """Every path a download must stay out of: (path, its key, whether being inside
    it is refused too)."""
    for name, task in tasks.items():
        where = f"tasks.{name}"
        if task.source_dir is not None:
            yield resolved(root, task.source_dir), f"{where}.source_dir", True
        for dep in task.dependencies:
            yield resolved(root, dep), f"{where}.dependencies", True
        if task.dockerfile is not None:
            yield resolved(root, task.dockerfile), f"{where}.dockerfile", False
        for inp in task.inputs:
            if inp.path is not None:
                # Inside an input, downloads would become its data and rerun it.
                yield resolved(root, inp.path), f"{where}.inputs.{inp.name}.path", True


def check_output_paths(
    issues: schema.Issues, root: Path, tasks: Mapping[str, Task], store: str
) -> None:
    """Refuse an `output_path` that is, holds, or lies in a place it must not."""
    root = root.resolve()
    places = list(_places(root, tasks))
    if store and not store.startswith("s3://"):
        places.append((resolved(root, store.removeprefix("file://")), "project.store", True))
    for name, task in tasks.items():
        if not task.output_path:
            continue
        key = ("tasks", name, "output_path")
        out = resolved(root, task.output_path)
        shown = repr(task.output_path)
        if out == root or root.is_relative_to(out):
            issues.invalid(key, f"{shown} would hold the project itself: name a subdirectory")
            continue
        for place, other, not_inside in places:
            if out == place or place.is_relative_to(out):
                relation = "is" if out == place else "holds"
                issues.invalid(
                    key,
                    f"{shown} {relation} the path of {other}: downloads need a directory "
                    "of their own; name another one",
                )
                break
            if not_inside and out.is_relative_to(place):
                issues.invalid(
                    key,
                    f"{shown} lies inside the path of {other}: downloads there would "
                    "become its files; name a directory outside it",
                )
                break
