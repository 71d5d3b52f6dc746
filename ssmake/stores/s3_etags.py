"""S3's ETags computed locally, so that an unchanged file is known without uploading it.

S3 gives a single PUT the MD5 of its bytes and an N-part multipart upload
`md5(md5s)-N`, so the local ETag is computed with the threshold and chunk size of
the one `TransferSizes` uploads use too. Local ETags are cached by (inode, size,
mtime_ns), so a no-change sync reads no file contents.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
_READ_CHUNK = MIB
_RACY_NS = 2_000_000_000  # see hashcache: a same-tick write keeps size and mtime
_MIN_PART = 5 * MIB
_MAX_PARTS = 10_000


@dataclass(frozen=True)
class TransferSizes:
    """When uploads go multipart and in what chunks (boto3's defaults: 8 MiB, 8 MiB)."""

    threshold: int = 8 * MIB
    chunk: int = 8 * MIB

    def chunk_for(self, size: int) -> int:
        # s3transfer's ChunksizeAdjuster: at least 5 MiB, doubled until <= 10,000 parts.
        chunk = max(self.chunk, _MIN_PART)
        while math.ceil(size / chunk) > _MAX_PARTS:
            chunk *= 2
        return chunk

    def transfer_config(self, concurrency: int = 4) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.threshold,
            multipart_chunksize=self.chunk,
            max_concurrency=concurrency,
            use_threads=concurrency > 1,
            # The CRT client picks its own part sizes; ETags would no longer match.
            preferred_transfer_client="classic",
        )


def s3_etag(path: Path, size: int, sizes: TransferSizes = TransferSizes()) -> str:
    """The ETag S3 gives `path` once uploaded with `sizes` (no SSE-KMS)."""
    if size < sizes.threshold:
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb", buffering=0) as f:
            while block := f.read(_READ_CHUNK):
                digest.update(block)
        return digest.hexdigest()
    chunk = sizes.chunk_for(size)
    parts = hashlib.md5(usedforsecurity=False)
    count = 0
    with path.open("rb", buffering=0) as f:
        while True:
            part = hashlib.md5(usedforsecurity=False)
            left = chunk
            while left and (block := f.read(min(_READ_CHUNK, left))):
                part.update(block)
                left -= len(block)
            if left == chunk:
                break
            parts.update(part.digest())
            count += 1
    return f"{parts.hexdigest()}-{count}"


class EtagCache:
    """Local files' S3 ETags by (inode, size, mtime_ns, chunk), kept in a JSON file."""

    VERSION = 1

    def __init__(self, path: Path | None, sizes: TransferSizes) -> None:
        self.path = path
        self.sizes = sizes
        self._entries: dict[str, list[int | str]] = {}
        self._dirty = False
        self._lock = threading.Lock()
        if path is not None:
            try:
                doc = json.loads(path.read_bytes())
                if doc.get("version") == self.VERSION and isinstance(doc.get("entries"), dict):
                    self._entries = doc["entries"]
            except (OSError, ValueError, AttributeError):
                pass  # missing or corrupt: it is only a cache

    def etag(self, path: Path, st: os.stat_result) -> str:
        chunk = self.sizes.chunk_for(st.st_size) if st.st_size >= self.sizes.threshold else 0
        stamp: list[int | str] = [st.st_ino, st.st_size, st.st_mtime_ns, chunk]
        name = str(path)
        with self._lock:
            entry = self._entries.get(name)
        if isinstance(entry, list) and len(entry) == 5 and entry[:4] == stamp:
            return str(entry[4])
        etag = s3_etag(path, st.st_size, self.sizes)
        if time.time_ns() - st.st_mtime_ns > _RACY_NS:
            with self._lock:
                self._entries[name] = [*stamp, etag]
                self._dirty = True
        return etag

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".etags.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f, self._lock:
                json.dump({"version": self.VERSION, "entries": self._entries}, f)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False
