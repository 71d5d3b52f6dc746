"""What `ssmake watch` watches: the files the selected tasks read, the directories
to watch for them, and which saves are noise (editor files, ignored paths, the
store and outputs)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ssmake.plan.ignore import ALWAYS_IGNORED, IGNORE_FILES, IgnoreMatcher
from ssmake.project.graph import select
from ssmake.project.model import Project, Task

# Files editors write beside the one being saved (vim's swap files and its
# "4913" write test, emacs locks and autosaves, backups, JetBrains' safe write).
EDITOR_FILES = (
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "4913",
    "*.tmp",
    "*___jb_tmp___",
    "*___jb_old___",
)


def _within(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def task_reads(project: Project, task: Task) -> tuple[Path, ...]:
    """The files and directories a task's fingerprint reads (resolved as the
    Fingerprinter resolves them)."""
    names = [task.source_dir or task.entry_point, *task.dependencies]
    names += [n for n in (task.requirements, task.dockerfile) if n is not None]
    names += [i.path for i in task.inputs if i.path is not None]
    paths = [Path(n).expanduser() for n in names]
    return tuple((p if p.is_absolute() else project.root / p).resolve() for p in paths)


def _never_read(project: Project) -> tuple[Path, ...]:
    """Output paths, and the store when it is a directory."""
    places = [t.output_path for t in project.tasks.values() if t.output_path]
    if not project.store.startswith("s3://"):
        places.append(project.store or ".ssmake")
    paths = {Path(os.path.normpath(project.root / Path(p).expanduser())) for p in places}
    return tuple(sorted(p for p in paths if p != project.root))


@dataclass(frozen=True)
class Scope:
    """Which saves matter to the selected tasks of a project, and where to watch."""

    root: Path
    ssmfile: Path
    tasks: tuple[str, ...]  # the selected tasks, upstream first
    reads: dict[str, tuple[Path, ...]]
    never_read: tuple[Path, ...]
    matcher: IgnoreMatcher

    @classmethod
    def of(cls, project: Project, targets: Sequence[str]) -> Scope:
        tasks = tuple(select(project, list(targets)))
        reads = {name: task_reads(project, project.tasks[name]) for name in tasks}
        hidden = _never_read(project)
        inside = frozenset(
            p.relative_to(project.root).as_posix() for p in hidden if _within(p, project.root)
        )
        matcher = IgnoreMatcher(project.root, inside)
        return cls(project.root, project.ssmfile.resolve(), tasks, reads, hidden, matcher)

    def ignored(self, path: Path, is_dir: bool) -> bool:
        if any(fnmatch.fnmatchcase(path.name, pattern) for pattern in EDITOR_FILES):
            return True
        if path == self.ssmfile or path == self.root:
            return False
        if any(_within(path, p) for p in self.never_read):
            return True
        if not _within(path, self.root):
            return any(part in ALWAYS_IGNORED for part in path.parts)
        return self.matcher.is_ignored(path.relative_to(self.root).as_posix(), is_dir)

    def affected(self, paths: Iterable[Path]) -> set[str]:
        """Selected tasks that read one of `paths` (or a directory holding one)."""
        paths = list(paths)
        return {
            name
            for name, reads in self.reads.items()
            if any(_within(p, r) or _within(r, p) for p in paths for r in reads)
        }

    def replans_all(self, path: Path) -> bool:
        return path == self.ssmfile or path.name in IGNORE_FILES

    def matters(self, path: Path) -> bool:
        return self.replans_all(path) or bool(self.affected([path]))

    def names(self, paths: Iterable[Path]) -> tuple[str, ...]:
        """Paths as the user writes them: relative to the root when inside it."""
        return tuple(
            p.relative_to(self.root).as_posix() if _within(p, self.root) else str(p) for p in paths
        )

    def watch_plan(self) -> dict[Path, bool]:
        """Directories to watch, each recursively or not: every save that matters is
        seen, and the store, outputs and .git are never watched (on Linux a recursive
        watch costs one inotify watch per directory below it)."""
        plan: dict[Path, bool] = {self.root: False, self.ssmfile.parent: False}
        for read in sorted({r for reads in self.reads.values() for r in reads}):
            top = read
            while not top.exists() and top.parent != top:
                top = top.parent  # its creation is seen there
            for parent in top.parents:
                if parent == self.root or not _within(parent, self.root):
                    break
                plan.setdefault(parent, False)
            if top == read and top.is_dir():
                self._expand(top, plan)
            else:
                plan.setdefault(top if top.is_dir() else top.parent, False)
        recursive = [d for d, r in plan.items() if r]
        return {
            d: r for d, r in plan.items() if not any(o != d and _within(d, o) for o in recursive)
        }

    def _expand(self, directory: Path, plan: dict[Path, bool]) -> None:
        if directory != self.root and not any(_within(p, directory) for p in self.never_read):
            plan[directory] = True
            return
        plan.setdefault(directory, False)
        try:
            children = sorted(directory.iterdir())
        except OSError:
            return
        for child in children:
            if child.is_dir() and not child.is_symlink() and not self.ignored(child, True):
                self._expand(child, plan)
