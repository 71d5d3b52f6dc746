"""S3's ETags computed locally, so that an unchanged file is known without uploading it.

S3 gives a single PUT the MD5 of its bytes and an N-part multipart upload
`md5(md5s)-N`, so the local ETag is computed with the threshold and chunk size of
the one `TransferSizes` uploads use too. They are computed from the bytes being
verified for an upload, never cached by a file's times: whether a file changed
is the hash cache's call alone.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
_READ_CHUNK = MIB
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


class ETagger:
    """S3's ETag of `size` bytes fed in order, uploaded with `sizes`: their MD5, or
    for a multipart upload the MD5 of the parts' MD5s and the count."""

    def __init__(self, sizes: TransferSizes, size: int) -> None:
        self.multipart = size >= sizes.threshold
        self.chunk = sizes.chunk_for(size)
        self.whole = hashlib.md5(usedforsecurity=False)
        self.parts: list[bytes] = []
        self.part = hashlib.md5(usedforsecurity=False)
        self.left = self.chunk

    def update(self, data: bytes) -> None:
        if not self.multipart:
            self.whole.update(data)
            return
        view = memoryview(data)
        while view:
            take = view[: self.left]
            self.part.update(take)
            self.left -= len(take)
            view = view[len(take) :]
            if not self.left:
                self.parts.append(self.part.digest())
                self.part = hashlib.md5(usedforsecurity=False)
                self.left = self.chunk

    def hexdigest(self) -> str:
        if not self.multipart:
            return self.whole.hexdigest()
        parts = list(self.parts)
        if self.left != self.chunk:
            parts.append(self.part.digest())
        return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


def s3_etag(path: Path, size: int, sizes: TransferSizes = TransferSizes()) -> str:
    """The ETag S3 gives `path` once uploaded with `sizes` (no SSE-KMS)."""
    etag = ETagger(sizes, size)
    with path.open("rb", buffering=0) as f:
        while block := f.read(_READ_CHUNK):
            etag.update(block)
    return etag.hexdigest()
