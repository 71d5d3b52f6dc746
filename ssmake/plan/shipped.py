"""What may be shipped to a job: regular files, inside the project or a declared
dependency, reached through links that stay there. And the walk of an input
directory, which is data: no ignore file and no editor-file rule applies inside
it, only the channel's own `exclude` patterns.

Refusals happen while planning, before anything is packed or uploaded, and a
special file is refused from its stat alone: it is never opened, so a fifo
cannot hang a dry run.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ssmake.errors import ConfigError
from ssmake.plan.ignore import is_editor_file, parse_rules

TYPE_CHECKING = False  # not typing's: `ssmake --check` loads this module
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from ssmake.plan.ignore import Entry

_KINDS = (
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class Boundary:
    """The directories files may come from: the project and the dependencies."""

    def __init__(self, root: Path, extra: Sequence[Path] = ()) -> None:
        self.root = root
        self.roots = tuple(str(r) for r in (root, *extra))

    def inside(self, target: str) -> bool:
        return any(target == r or target.startswith(r.rstrip("/") + "/") for r in self.roots)

    def shown(self, path: str) -> str:
        """`path` as the user knows it: relative to the project when inside it."""
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return path

    def check_link(self, path: str) -> None:
        """Refuse a symbolic link whose target lies outside the boundary."""
        target = os.path.realpath(path)
        if not self.inside(target):
            raise ConfigError(
                f"{self.shown(path)} is a symbolic link to {target}, outside the project: "
                "ssmake ships no file from outside it; copy the file in, or name its "
                "directory in the task's dependencies"
            )

    def admit(self, path: str, st: os.stat_result) -> None:
        """Refuse anything but a regular file (from its stat: it is never opened)."""
        if stat.S_ISREG(st.st_mode):
            return
        kind = next((what for test, what in _KINDS if test(st.st_mode)), "not a regular file")
        raise ConfigError(
            f"{self.shown(path)} is {kind}: only regular files can be shipped to a job; "
            "move it out of the task's directories"
        )

    def check_entry(self, entry: os.DirEntry[str], st: os.stat_result) -> None:
        """Refuse a walked file that is a link leaving the boundary, or special."""
        if entry.is_symlink():
            self.check_link(entry.path)
        self.admit(entry.path, st)

    def check_walked(self, entries: list[os.DirEntry[str]], never: Collection[str]) -> None:
        """`check_entry` for the files of a directory listing that were kept (ignored
        names aside: an editor's file is not shipped, whatever it is)."""
        for entry in entries:
            if entry.name in never or entry.is_dir():
                continue
            special = entry.is_symlink() or not entry.is_file(follow_symlinks=False)
            if special and not is_editor_file(entry.name):
                self.check_entry(entry, entry.stat())

    def single(self, path: Path) -> os.stat_result:
        """The stat of a file named directly (an entry point, a dependency, requirements)."""
        name = str(path)
        if os.path.islink(name):
            self.check_link(name)
        st = os.stat(name)
        self.admit(name, st)
        return st


def walk_input(path: Path, exclude: Sequence[str], boundary: Boundary | None) -> list[Entry]:
    """Every file a local input delivers: `path` itself when it is a file, else the
    files under it except those its `exclude` patterns (gitignore syntax, relative
    to `path`) match: (relative name, stat, path). Links are followed, once each,
    and with a `boundary` only when they stay inside it; special files are then
    refused. A path that is gone contributes nothing."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    if not stat.S_ISDIR(st.st_mode):
        if boundary is not None:
            return [(path.name, boundary.single(path), str(path))]
        return [(path.name, st, str(path))]
    rules = parse_rules("\n".join(exclude))

    def excluded(rel: str, is_dir: bool) -> bool:
        verdict = False
        for rule in rules:
            if (not rule.dir_only or is_dir) and rule.regex.match(rel):
                verdict = not rule.negate
        return verdict

    out: list[Entry] = []
    stack: list[tuple[str, str]] = [(str(path), "")]
    seen: set[tuple[int, int]] = set()
    while stack:
        directory, rel_dir = stack.pop()
        try:
            st_dir = os.stat(directory)
            if (st_dir.st_dev, st_dir.st_ino) in seen:
                continue
            seen.add((st_dir.st_dev, st_dir.st_ino))
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_dir = entry.is_dir()
                if is_dir:
                    if not (rules and excluded(rel, True)):
                        if boundary is not None and entry.is_symlink():
                            boundary.check_link(entry.path)
                        stack.append((entry.path, rel))
                    continue
                if rules and excluded(rel, False):
                    continue
                st = entry.stat()
            except OSError:
                continue  # gone meanwhile, or a dangling link: nothing to ship
            if boundary is not None:
                boundary.check_entry(entry, st)
            out.append((rel, st, entry.path))
    return out
