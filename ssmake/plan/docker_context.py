"""What a Dockerfile build sees: the rendered Dockerfile and its build context.

The context is the Dockerfile's directory as `docker build` would send it
(`.dockerignore` respected, with its anchored patterns, `**` and `!` exceptions),
less what is ssmake's own or never part of an image: `.git`, `__pycache__`,
`.ssmake`, the local store and the tasks' download destinations. ssmake sends
exactly these files to the daemon, so the content tag (a hash of the rendered
Dockerfile and these files) names exactly what was built. Pure: no docker here.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath

from ssmake.plan.ignore import _glob_to_regex, walk_tree

TYPE_CHECKING = False  # not typing's: `ssmake --check` loads this module
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ssmake.plan.hashcache import HashCache

BASE_PLACEHOLDER = "__BASE_IMAGE__"
DOCKERFILE = "Dockerfile"
DOCKERIGNORE = ".dockerignore"
NEVER_SENT = frozenset({".git", "__pycache__", ".ssmake"})
TAG_PREFIX = "ssmake-"


class _Pattern:
    __slots__ = ("exception", "regex")

    def __init__(self, regex: re.Pattern[str], exception: bool) -> None:
        self.regex = regex
        self.exception = exception


class DockerIgnore:
    """`.dockerignore` rules: patterns are relative to the context root; a path is
    excluded when it or a directory above it matches, and the last match decides."""

    def __init__(self, text: str = "") -> None:
        self.patterns: list[_Pattern] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            line = line[1:].strip() if exception else line
            cleaned = os.path.normpath(line).replace(os.sep, "/").lstrip("/")
            if cleaned in ("", "."):
                continue
            regex = re.compile(f"^{_glob_to_regex(cleaned)}$", re.DOTALL)
            self.patterns.append(_Pattern(regex, exception))
        self.has_exceptions = any(p.exception for p in self.patterns)

    @classmethod
    def of(cls, context: Path) -> DockerIgnore:
        try:
            return cls((context / DOCKERIGNORE).read_text(errors="replace"))
        except OSError:
            return cls()

    def excludes(self, rel: str) -> bool:
        """Whether the context-relative posix path `rel` stays out of the build."""
        parts = rel.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for pattern in self.patterns:
            if any(pattern.regex.match(c) for c in candidates):
                excluded = not pattern.exception
        return excluded


def context_files(
    context: Path, exclude: frozenset[str] = frozenset()
) -> list[tuple[str, os.stat_result, str]]:
    """(path relative to the context, stat, path) of every file sent to the build,
    sorted; `exclude` holds context-relative paths that are never sent. Symbolic
    links are sent as what they point to (a linked directory is entered once)."""
    ignore = DockerIgnore.of(context)

    def skip(rel_dir: str, rel: str, name: str, is_dir: bool) -> bool:
        if name in NEVER_SENT or rel in exclude:
            return True
        if is_dir:
            # An excluded directory may still hold a file that a `!` rule keeps.
            return not ignore.has_exceptions and ignore.excludes(rel)
        return rel not in (DOCKERFILE, DOCKERIGNORE) and ignore.excludes(rel)

    return sorted(walk_tree(str(context), "", skip), key=lambda f: f[0])


def digest_files(files: list[tuple[str, os.stat_result, str]], hashes: HashCache) -> dict[str, str]:
    """Context-relative path -> sha256 of each of `context_files`' files."""
    digests = hashes.hash_files([(path, st) for _rel, st, path in files])
    return {rel: d for (rel, _st, _path), d in zip(files, digests, strict=True)}


def relative_excludes(context: Path, root: Path, excluded: frozenset[str]) -> frozenset[str]:
    """Project-relative paths that never count, re-expressed relative to `context`."""
    out: set[str] = set()
    for rel in excluded:
        try:
            out.add(PurePosixPath((root / rel).resolve().relative_to(context)).as_posix())
        except ValueError:
            continue
    return frozenset(out - {"."})


def uses_base(dockerfile: str) -> bool:
    return BASE_PLACEHOLDER in dockerfile


def render_dockerfile(dockerfile: str, base: str | None) -> str:
    """The Dockerfile with `__BASE_IMAGE__` replaced by the base image."""
    if base is None:
        return dockerfile
    return dockerfile.replace(BASE_PLACEHOLDER, base)


def content_tag(rendered: str, context: Mapping[str, str]) -> str:
    """The tag naming an image by what it is built from: `ssmake-` and 24 hex digits."""
    digest = hashlib.sha256(rendered.encode())
    for rel in sorted(context):
        digest.update(f"\0{rel}\0{context[rel]}".encode())
    return TAG_PREFIX + digest.hexdigest()[:24]
