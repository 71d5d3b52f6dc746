"""Content hashes of files, cached by (path, inode, size, mtime_ns).

A no-op plan over a large tree stats every file and reads none. An entry is only
trusted when the file's mtime is safely older than the moment it was hashed (the
"racy git" problem: a write within the same clock tick keeps size and mtime).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

CACHE_VERSION = 1
_CHUNK = 1 << 20
# Below this size a thread pool costs more than it saves.
_PARALLEL_MIN_BYTES = 4 << 20
_RACY_NS = 2_000_000_000


def sha256_path(path: str | Path) -> str:
    """The sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


Key = tuple[int, int, int]


class HashCache:
    """Hashes files, remembering results in a JSON file between runs."""

    def __init__(self, path: Path | None, *, workers: int | None = None) -> None:
        self.path = path
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._entries: dict[str, list[int | str]] = {}
        self._dirty = False
        self.hashed_files = 0
        self.hashed_bytes = 0
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return  # missing or corrupt: start empty, it is only a cache
        if (
            isinstance(doc, dict)
            and doc.get("version") == CACHE_VERSION
            and isinstance(doc.get("entries"), dict)
        ):
            self._entries = doc["entries"]

    def _lookup(self, path: str, st: os.stat_result) -> str | None:
        entry = self._entries.get(path)
        if (
            isinstance(entry, list)
            and len(entry) == 4
            and entry[0] == st.st_ino
            and entry[1] == st.st_size
            and entry[2] == st.st_mtime_ns
            and isinstance(entry[3], str)
            and len(entry[3]) == 64
        ):
            return entry[3]
        return None

    def hash_files(self, files: Sequence[tuple[str | Path, os.stat_result]]) -> list[str]:
        """The content hash of each (path, stat) pair, in order."""
        result: list[str | None] = []
        missing: list[int] = []
        for i, (path, st) in enumerate(files):
            cached = self._lookup(str(path), st)
            result.append(cached)
            if cached is None:
                missing.append(i)
        if missing:
            todo_bytes = sum(files[i][1].st_size for i in missing)
            paths = [files[i][0] for i in missing]
            if self.workers > 1 and len(missing) > 1 and todo_bytes >= _PARALLEL_MIN_BYTES:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(self.workers) as pool:
                    digests = list(pool.map(sha256_path, paths))
            else:
                digests = [sha256_path(p) for p in paths]
            now = time.time_ns()
            for i, digest in zip(missing, digests, strict=True):
                path, st = files[i]
                result[i] = digest
                self.hashed_files += 1
                self.hashed_bytes += st.st_size
                if now - st.st_mtime_ns > _RACY_NS:
                    self._entries[str(path)] = [st.st_ino, st.st_size, st.st_mtime_ns, digest]
                    self._dirty = True
        return [r for r in result if r is not None]

    def save(self) -> None:
        """Write the cache if anything was added (atomically; a lost race only loses cache)."""
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".hashes.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": CACHE_VERSION, "entries": self._entries}, f)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False
