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
import os
import tempfile
from pathlib import Path
from typing import Any

VERSION = 1

Record = dict[str, Any]


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

    def save(self) -> None:
        """Write the records if any changed (atomically; a lost race only loses cache)."""
        if self.path is None or not self._dirty or self._records is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".stat.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": VERSION, "tasks": self._records}, f)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False
