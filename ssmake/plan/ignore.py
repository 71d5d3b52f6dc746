"""Which files a task's fingerprint covers: gitignore rules, `.ssmakeignore`, and
the directories that never count (`.git`, `__pycache__`, `.ssmake`)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

# Not `from typing import TYPE_CHECKING`: `ssmake --check` loads this module, and
# typing and dataclasses would cost it more than its walk of a small project.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from ssmake.plan.shipped import Boundary

    SkipFn = Callable[[str, str, str, bool], bool]

ALWAYS_IGNORED = frozenset({".git", "__pycache__", ".ssmake", ".hg", ".svn"})
# Editors' swap, backup and lock files: saving through an editor must not change
# what a task's code is.
EDITOR_FILES = re.compile(r"(?:.*\.sw[px]|.*~|\.#.*|#.*#|4913)$")
IGNORE_FILES = (".gitignore", ".ssmakeignore")


class Rule:
    __slots__ = ("dir_only", "negate", "regex")

    def __init__(self, regex: re.Pattern[str], negate: bool, dir_only: bool) -> None:
        self.regex = regex
        self.negate = negate
        self.dir_only = dir_only


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = glob[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        elif c == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def parse_rules(text: str) -> list[Rule]:
    """Rules from one ignore file, in order (the last matching rule decides)."""
    rules: list[Rule] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\ "):
            line += " "
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate or line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        body = _glob_to_regex(line)
        pattern = f"^{body}$" if anchored else f"^(?:.*/)?{body}$"
        rules.append(Rule(re.compile(pattern, re.DOTALL), negate, dir_only))
    return rules


class RuleSet:
    __slots__ = ("base", "rules")

    def __init__(self, base: str, rules: tuple[Rule, ...]) -> None:
        self.base = base  # the directory (relative, posix, "" for the root) of the rules
        self.rules = rules


def _read_rules(
    directory: Path, base: str, names: Collection[str] = IGNORE_FILES
) -> RuleSet | None:
    rules: list[Rule] = []
    for name in IGNORE_FILES:
        if name not in names:
            continue
        try:
            text = (directory / name).read_text(errors="replace")
        except OSError:
            continue
        rules.extend(parse_rules(text))
    return RuleSet(base, tuple(rules)) if rules else None


def _ignored(rel: str, is_dir: bool, sets: list[RuleSet]) -> bool:
    verdict = False
    for rs in sets:
        sub = rel[len(rs.base) + 1 :] if rs.base else rel
        for rule in rs.rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(sub):
                verdict = not rule.negate
    return verdict


# The last and first characters of a name rule out nearly every name before the regex.
_EDITOR_LAST = frozenset("px~#3\n")  # 3: "4913", vim's probe file
_EDITOR_FIRST = frozenset("#.")


def is_editor_file(name: str) -> bool:
    """Whether a name is an editor's swap, backup, lock or probe file."""
    return (name[-1] in _EDITOR_LAST or name[0] in _EDITOR_FIRST) and bool(EDITOR_FILES.match(name))


Entry = tuple[str, os.stat_result, str]


class IgnoreMatcher:
    """Answers "is this path ignored?" for paths under a project root."""

    def __init__(
        self, root: Path, exclude: frozenset[str] = frozenset(), boundary: Boundary | None = None
    ) -> None:
        self.root = root
        # Where a walked file may come from (links, special files); None refuses nothing.
        self.boundary = boundary
        # Paths (relative, posix) that never count, such as download destinations.
        self.exclude = exclude
        self._excluded_in: dict[str, set[str]] = {}
        for rel in exclude:
            parent, _, name = rel.rpartition("/")
            self._excluded_in.setdefault(parent, set()).add(name)
        self._sets: dict[str, RuleSet | None] = {}
        self._in_force: dict[str, list[RuleSet]] = {}

    def _sets_for(self, rel_dir: str) -> list[RuleSet]:
        """The rule sets in force in a directory: its own and its ancestors'."""
        cached = self._in_force.get(rel_dir)
        if cached is not None:
            return cached
        parts = rel_dir.split("/") if rel_dir else []
        sets: list[RuleSet] = []
        for n in range(len(parts) + 1):
            base = "/".join(parts[:n])
            if base not in self._sets:
                self._sets[base] = _read_rules(self.root / base, base)
            rs = self._sets[base]
            if rs is not None:
                sets.append(rs)
        self._in_force[rel_dir] = sets
        return sets

    def is_ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether `rel` (posix, relative to the root), or a directory above it, is ignored."""
        parts = rel.split("/")
        for n in range(1, len(parts) + 1):
            name = parts[n - 1]
            sub_is_dir = is_dir if n == len(parts) else True
            if name in ALWAYS_IGNORED or "/".join(parts[:n]) in self.exclude:
                return True
            parent = "/".join(parts[: n - 1])
            if _ignored("/".join(parts[:n]), sub_is_dir, self._sets_for(parent)):
                return True
        return False

    def walk(self, top: Path) -> list[Entry]:
        """Every file under `top` that is not ignored: (path relative to top, stat, path),
        in no particular order.

        Paths are strings: on a tree of many thousand files, Path objects cost more
        than the stat calls. The rules in force are worked out once per directory;
        a directory's ignore files are read only when its listing shows them.
        """
        top_rel = top.relative_to(self.root).as_posix() if top != self.root else ""
        if top_rel == ".":
            top_rel = ""
        if top_rel and self.is_ignored(top_rel, True):
            return []
        cut = len(top_rel) + 1 if top_rel else 0
        out: list[Entry] = []
        stack: list[tuple[str, str]] = [(str(top), top_rel)]
        seen: set[tuple[int, int]] = set()
        while stack:
            directory, rel_dir = stack.pop()
            entries = _listing(directory, seen)
            if entries is None:
                continue
            if rel_dir not in self._sets:
                names = {e.name for e in entries}
                self._sets[rel_dir] = _read_rules(Path(directory), rel_dir, names)
            sets = self._sets_for(rel_dir)
            file_rules = any(not r.dir_only for rs in sets for r in rs.rules)
            never = ALWAYS_IGNORED | self._excluded_in.get(rel_dir, set())
            prefix = f"{rel_dir}/" if rel_dir else ""
            out_prefix = prefix[cut:]
            if not file_rules:
                # The usual directory, where only names decide: one comprehension
                # over its files (this runs once per file of every task). A file
                # that vanishes or a dangling link takes the loop below instead.
                try:
                    out += [
                        (out_prefix + n, e.stat(), e.path)
                        for e in entries
                        if not e.is_dir()
                        and (n := e.name) not in never
                        and (
                            (n[-1] not in _EDITOR_LAST and n[0] not in _EDITOR_FIRST)
                            or not EDITOR_FILES.match(n)
                        )
                    ]
                    files_done = True
                except OSError:
                    files_done = False
                if files_done and self.boundary is not None:
                    self.boundary.check_walked(entries, never)
            else:
                files_done = False
            for entry in entries:
                name = entry.name
                if name in never:
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    continue
                if is_dir:
                    rel = prefix + name
                    if not (sets and _ignored(rel, True, sets)):
                        if self.boundary is not None and entry.is_symlink():
                            self.boundary.check_link(entry.path)
                        stack.append((entry.path, rel))
                    continue
                if files_done or (
                    (name[-1] in _EDITOR_LAST or name[0] in _EDITOR_FIRST)
                    and EDITOR_FILES.match(name)
                ):
                    continue
                if file_rules and _ignored(prefix + name, False, sets):
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue  # a dangling link has no content to hash
                if self.boundary is not None:
                    self.boundary.check_entry(entry, st)
                out.append((out_prefix + name, st, entry.path))
        return out


def walk_path(path: Path, matcher: IgnoreMatcher) -> list[Entry]:
    """The files `path` contributes: itself when it is a file, else the files under it
    that are not ignored (by `matcher` inside its root, by the path's own rules outside).
    With the matcher's boundary, a link leaving it or a special file is refused."""
    boundary = matcher.boundary
    try:
        st = os.stat(path)
    except OSError:
        return []
    if not stat.S_ISDIR(st.st_mode):
        if boundary is not None:
            return [(path.name, boundary.single(path), str(path))]
        return [(path.name, st, str(path))] if stat.S_ISREG(st.st_mode) else []
    inside = path == matcher.root or path.is_relative_to(matcher.root)
    return (matcher if inside else IgnoreMatcher(path, boundary=boundary)).walk(path)


def _listing(directory: str, seen: set[tuple[int, int]]) -> list[os.DirEntry[str]] | None:
    """A directory's entries, or None when it cannot be read or was already walked
    (through a symbolic link)."""
    try:
        st_dir = os.stat(directory)
        if (st_dir.st_dev, st_dir.st_ino) in seen:
            return None
        seen.add((st_dir.st_dev, st_dir.st_ino))
        with os.scandir(directory) as it:
            return list(it)
    except OSError:
        return None


def walk_tree(top: str, top_rel: str, skip: SkipFn) -> list[Entry]:
    """Every file under the directory `top`: (relative path, stat, path), relative
    paths starting with `top_rel`, in no particular order. `skip(rel_dir, rel,
    name, is_dir)` prunes entries (a skipped directory is not entered).

    Symlinked files count with their target's content; symlinked directories are
    followed once (a link back up the tree is not followed again); dangling links
    and unreadable directories are passed over.
    """
    out: list[Entry] = []
    stack: list[tuple[str, str]] = [(top, top_rel)]
    seen: set[tuple[int, int]] = set()
    while stack:
        directory, rel_dir = stack.pop()
        entries = _listing(directory, seen)
        if entries is None:
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            if skip(rel_dir, rel, entry.name, is_dir):
                continue
            if is_dir:
                stack.append((entry.path, rel))
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            out.append((rel, st, entry.path))
    return out
