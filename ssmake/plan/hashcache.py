"""Content hashes of files, cached by (path, inode, size, mtime_ns, ctime_ns).

This cache is ssmake's one change detector: whatever it says is unchanged is
unchanged for the fingerprint, the code tarball and the input sync alike. A no-op
plan over a large tree stats every file and reads none. The key is git's index
key: a rename over the file changes the inode, `touch -m` back to an old time
still changes ctime, and chmod changes ctime too. An entry is only recorded when
both the file's mtime and its ctime are safely older than the moment it was
hashed (the "racy git" problem: a write within the same clock tick keeps them),
and when the file's identity did not change while it was read.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

from ssmake.progress import Throttled

CACHE_VERSION = 3
# The file: MAGIC and the version byte; the byte length of the paths; the paths,
# NUL-joined (no POSIX path holds a NUL); per path 4 little-endian int64 (inode,
# size, mtime_ns, ctime_ns); per path the 32 bytes of its sha256. Read and written
# whole, it loads in 0.4x and saves in 0.2x the time of the JSON it replaced at
# 100,000 entries (bench/bench_hashcache.py).
MAGIC = b"ssmkhc"
_HEADER = len(MAGIC) + 1 + 8
_STAT_FIELDS = 4
_CHUNK = 1 << 20
# Files below this size are read whole and hashed on the calling thread: for them
# a thread hand-off or a 1 MiB buffer costs more than the hashing.
SMALL_FILE = 1 << 20
# Below this many bytes of large files a thread pool costs more than it saves.
_PARALLEL_MIN_BYTES = 4 << 20
RACY_NS = 2_000_000_000
# Hashing this many bytes in one call tells its progress (done, total bytes), at
# most once per PROGRESS_INTERVAL seconds and once at the end.
PROGRESS_MIN_BYTES = 64 << 20
PROGRESS_INTERVAL = 0.1
HashProgress = Callable[[int, int], None]


def sha256_small(path: str | Path, size: int) -> str:
    """The sha256 of a small file's content (`size` bytes when it was stat-ed), read
    with bare file descriptors: for 4 KiB files a file object costs more than the
    hashing. Read to the end, so a file that grew meanwhile is hashed whole."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, size + 1)]
        while chunks[-1]:
            chunks.append(os.read(fd, _CHUNK))
    finally:
        os.close(fd)
    return hashlib.sha256(b"".join(chunks)).hexdigest()


def sha256_path(path: str | Path) -> str:
    """The sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What the cache keys a file's content by (besides its path)."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def settled(st: os.stat_result, now: int) -> bool:
    """Whether a file's times are far enough from `now` to key its content by."""
    return now - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS


class HashCache:
    """Hashes files, remembering results in a file between runs."""

    def __init__(self, path: Path | None, *, workers: int | None = None) -> None:
        self.path = path
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._table: HashTable | None = None
        self._dirty = False
        self.hashed_files = 0
        self.hashed_bytes = 0

    @property
    def _entries(self) -> HashTable:
        # Read on first use: a plan that every task's stat digest answers never needs it.
        if self._table is None:
            self._table = HashTable.read(self.path) if self.path is not None else HashTable()
        return self._table

    def _lookup(self, path: str, st: os.stat_result) -> str | None:
        return self._entries.get(path, identity(st))

    def hash_files(
        self,
        files: Sequence[tuple[str | Path, os.stat_result]],
        on_progress: HashProgress | None = None,
    ) -> list[str]:
        """The content hash of each (path, stat) pair, in order; the bytes of those
        not in the cache count for `on_progress` when there are enough of them."""
        result: list[str | None] = []
        missing: list[int] = []
        for i, (path, st) in enumerate(files):
            cached = self._lookup(str(path), st)
            result.append(cached)
            if cached is None:
                missing.append(i)
        if missing:
            todo = [files[i] for i in missing]
            progress = Throttled(
                sum(st.st_size for _, st in todo),
                on_progress,
                min_bytes=PROGRESS_MIN_BYTES,
                interval=PROGRESS_INTERVAL,
            )
            digests = self._hash(todo, progress.add if progress.active else None)
            now = time.time_ns()
            for i, digest in zip(missing, digests, strict=True):
                path, st = files[i]
                result[i] = digest
                self.hashed_files += 1
                self.hashed_bytes += st.st_size
                if settled(st, now) and _unchanged(path, st):
                    self._entries.put(str(path), identity(st), digest)
                    self._dirty = True
        return [r for r in result if r is not None]

    def _hash(
        self,
        files: Sequence[tuple[str | Path, os.stat_result]],
        advance: Callable[[int], None] | None,
    ) -> list[str]:
        """Small files serially, read whole; large ones on a thread pool (hashlib
        releases the GIL while it hashes a large buffer)."""
        digests: list[str] = [""] * len(files)
        large: list[int] = []
        for i, (path, st) in enumerate(files):
            if st.st_size < SMALL_FILE:
                digests[i] = sha256_small(path, st.st_size)
                if advance is not None:
                    advance(st.st_size)
            else:
                large.append(i)
        large_bytes = sum(files[i][1].st_size for i in large)
        if self.workers > 1 and len(large) > 1 and large_bytes >= _PARALLEL_MIN_BYTES:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.workers) as pool:
                large_digests = pool.map(sha256_path, [files[i][0] for i in large])
                for i, d in zip(large, large_digests, strict=True):
                    digests[i] = d
                    if advance is not None:
                        advance(files[i][1].st_size)
        else:
            for i in large:
                digests[i] = sha256_path(files[i][0])
                if advance is not None:
                    advance(files[i][1].st_size)
        return digests

    def save(self) -> None:
        """Write the cache if anything was added (atomically; a lost race only loses cache)."""
        if self.path is None or not self._dirty:
            return
        import tempfile

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".hashes.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self._entries.to_bytes())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False


_INT64_END = 1 << 63


def _signed(value: int) -> int:
    """An inode or size above 2**63 - 1, as the int64 its bits make."""
    return value - (1 << 64) if value >= _INT64_END else value


class HashTable:
    """The entries, as the file lays them out: a path's index into flat arrays."""

    def __init__(
        self, paths: list[str] | None = None, stats: array[int] | None = None, shas: bytes = b""
    ) -> None:
        self.paths = paths or []
        self.index = dict(zip(self.paths, range(len(self.paths)), strict=True))
        self.stats = stats if stats is not None else array("q")
        self.shas = bytearray(shas)

    @classmethod
    def read(cls, path: Path) -> HashTable:
        """The table in `path`; empty when it is missing, of another version or damaged
        (it is only a cache)."""
        try:
            data = path.read_bytes()
        except OSError:
            return cls()
        if len(data) < _HEADER or data[: len(MAGIC) + 1] != MAGIC + bytes([CACHE_VERSION]):
            return cls()
        length = int.from_bytes(data[len(MAGIC) + 1 : _HEADER], "little")
        try:
            blob = data[_HEADER : _HEADER + length].decode("utf-8", "surrogateescape")
        except UnicodeDecodeError:
            return cls()
        paths = blob.split("\0") if length else []
        start = _HEADER + length
        stats_end = start + 8 * _STAT_FIELDS * len(paths)
        if len(data) != stats_end + 32 * len(paths) or len(set(paths)) != len(paths):
            return cls()
        stats = array("q")
        stats.frombytes(data[start:stats_end])
        if sys.byteorder != "little":
            stats.byteswap()
        return cls(paths, stats, data[stats_end:])

    def get(self, path: str, key: tuple[int, int, int, int]) -> str | None:
        i = self.index.get(path)
        if i is None:
            return None
        ino, size, mtime, ctime = key
        if ino >= _INT64_END or size >= _INT64_END:
            ino, size = _signed(ino), _signed(size)
        stats, at = self.stats, _STAT_FIELDS * i
        if (
            stats[at] != ino
            or stats[at + 1] != size
            or stats[at + 2] != mtime
            or stats[at + 3] != ctime
        ):
            return None
        return self.shas[32 * i : 32 * i + 32].hex()

    def put(self, path: str, key: tuple[int, int, int, int], digest: str) -> None:
        raw = bytes.fromhex(digest)
        i = self.index.get(path)
        if i is None:
            self.index[path] = len(self.paths)
            self.paths.append(path)
            self.stats.extend(map(_signed, key))
            self.shas += raw
            return
        at = _STAT_FIELDS * i
        self.stats[at : at + _STAT_FIELDS] = array("q", map(_signed, key))
        self.shas[32 * i : 32 * i + 32] = raw

    def to_bytes(self) -> bytes:
        blob = "\0".join(self.paths).encode("utf-8", "surrogateescape")
        stats = array("q", self.stats)
        if sys.byteorder != "little":
            stats.byteswap()
        header = MAGIC + bytes([CACHE_VERSION]) + len(blob).to_bytes(8, "little")
        return b"".join((header, blob, stats.tobytes(), bytes(self.shas)))


def _unchanged(path: str | Path, st: os.stat_result) -> bool:
    """Whether the file still has the identity it had before it was read: a write
    while it was hashed must not be recorded under the old key."""
    try:
        return identity(os.stat(path)) == identity(st)
    except OSError:
        return False
