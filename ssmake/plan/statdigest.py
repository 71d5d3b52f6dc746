"""Stat digests: per task, the digest of its files' identities on disk at a moment
its fingerprint matched its marker, kept in the project's work directory.

A no-op plan then stats every file and compares one digest per task: no hash-cache
load, no lookups, no canonical JSON of the components and no parse of the marker
(its bytes are compared by hash). A record is only written when every file is
outside the racy window, and it only ever states a fact ("these identities give
this fingerprint; this marker says so"), so a lost or interleaved write can cost
a cache miss but never a wrong verdict.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import time
from operator import attrgetter, itemgetter
from pathlib import Path

from ssmake.plan.hashcache import RACY_NS

TYPE_CHECKING = False  # not typing's: `ssmake --check` loads this module
if TYPE_CHECKING:
    from typing import Any

    from ssmake.plan.ignore import Entry

    Record = dict[str, Any]

VERSION = 1
#: What one task's stat digest walked, in order: ("tree" | "context", root, exclude).
Walk = tuple[str, str, tuple[str, ...]]
#: One walk as a stat digest keeps it: see `walk_record`.
WalkRecord = tuple[bytes, int, int]

_IDENTITY = attrgetter("st_ino", "st_size", "st_mtime_ns", "st_ctime_ns")
_MTIME = attrgetter("st_mtime_ns")
_CTIME = attrgetter("st_ctime_ns")
_REL = itemgetter(0)
_STAT = itemgetter(1)


class StatDigest:
    """One task's stat digest, whether it may be recorded, and how it was made."""

    __slots__ = ("files", "settled", "skeleton", "value", "walks")

    def __init__(self, skeleton: bytes, walks: list[tuple[Walk, WalkRecord]]) -> None:
        self.skeleton = skeleton
        self.walks = [walk for walk, _record in walks]
        self.files = sum(count for _walk, (_blob, _newest, count) in walks)
        h = hashlib.sha256(skeleton)
        newest = 0
        for _walk, (blob, walk_newest, _count) in walks:
            h.update(blob)
            newest = max(newest, walk_newest)
        self.value = h.hexdigest()
        # A file changed within a clock tick of its stat could keep its size and times.
        self.settled = time.time_ns() - newest > RACY_NS


def walk_record(walk: Walk, entries: list[Entry]) -> WalkRecord:
    """What a stat digest keeps of one walk: its files' names and identities as
    bytes, the newest of their mtimes and ctimes, and how many there were (a few
    dozen bytes a file, where the entries hold a stat_result each)."""
    kind, root, _exclude = walk
    stats = list(map(_STAT, entries))
    names = list(map(_REL, entries))
    # marshal version 2 has no back-references: equal values give equal bytes.
    blob = marshal.dumps((kind, root, names, list(map(_IDENTITY, stats))), 2)
    newest = max(max(map(_MTIME, stats)), max(map(_CTIME, stats))) if stats else 0
    return blob, newest, len(entries)


def marker_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class StatDigests:
    """Records by task name, read on first use and written back when changed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._records: dict[str, Record] | None = None
        self._dirty = False

    def _all(self) -> dict[str, Record]:
        if self._records is None:
            self._records = self._load()
        return self._records

    def _load(self) -> dict[str, Record]:
        if self.path is None:
            return {}
        try:
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}  # missing or corrupt: it is only a cache
        if isinstance(doc, dict) and doc.get("version") == VERSION:
            tasks = doc.get("tasks")
            if isinstance(tasks, dict):
                return {k: v for k, v in tasks.items() if isinstance(v, dict)}
        return {}

    def get(self, task: str, stat: str, marker: str) -> Record | None:
        """The record of `task` when both its stat digest and its marker's hash match."""
        record = self._all().get(task)
        if record is None or record.get("stat") != stat or record.get("marker") != marker:
            return None
        if not isinstance(record.get("fingerprint"), str):
            return None
        return record

    def put(self, task: str, record: Record) -> None:
        records = self._all()
        if records.get(task) != record:
            records[task] = record
            self._dirty = True

    def snapshot(self, doc: object, path: str) -> None:
        """Write `ssmake --check`'s snapshot unless the same one is there."""
        if self.path is None:
            return
        try:
            with open(path, "rb") as f:
                if json.loads(f.read()) == doc:
                    return
        except (OSError, ValueError):
            pass
        write_atomic(Path(path), doc)

    def save(self) -> None:
        """Write the records if any changed (atomically; a lost race only loses cache)."""
        if self.path is None or not self._dirty or self._records is None:
            return
        write_atomic(self.path, {"version": VERSION, "tasks": self._records})
        self._dirty = False


def write_atomic(path: Path, doc: object) -> None:
    """Write JSON through a temporary file and a rename: readers see all or nothing."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
