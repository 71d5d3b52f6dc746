"""A store in an S3 bucket, or any S3-compatible endpoint (AWS_ENDPOINT_URL, moto).

Directory sync decides "unchanged" the way S3 can check it: equal size and equal
ETag, where the local ETag is computed exactly as S3 computes it for the way we
upload (one MD5 for a single PUT, `md5(md5s)-N` for N multipart chunks), with the
threshold and chunk size of one `TransferSizes` used for both. Local ETags are
cached by (inode, size, mtime_ns), so a no-change sync reads no file contents.

A synced prefix is ssmake's own (`<project>/<task>/input/<name>/`), so after a
complete sync a manifest of what is there is written beside it, and the next
sync reads that one object instead of listing thousands (as DVC trusts its
`.dir` objects). It records local ETags, so even SSE-KMS objects, whose ETags
are not MD5s, are then recognised as unchanged. The manifest is deleted before
the first change, so a sync cut short leaves none and the next one lists. Keys
changed under the prefix by other tools go unnoticed while the manifest exists;
`ssmake clean` removes both.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssmake import aws
from ssmake.errors import KeyNotFound, StoreError
from ssmake.stores import ObjectInfo, ProgressFn, SyncStats

MIB = 1 << 20
SYNC_WORKERS = 16
_READ_CHUNK = MIB
_DELETE_BATCH = 1000  # DeleteObjects' limit
_RACY_NS = 2_000_000_000  # see hashcache: a same-tick write keeps size and mtime
_MIN_PART = 5 * MIB
_MAX_PARTS = 10_000
# Beside a synced prefix `p/`, the key `p.ssmake-sync.json` (outside the prefix, so
# not part of a job's channel) records what the last complete sync left there.
MANIFEST_SUFFIX = ".ssmake-sync.json"
MANIFEST_VERSION = 1


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


def _etag(raw: str) -> str:
    return raw.strip('"')


class S3Store:
    """Keys live under `s3://bucket/prefix/`; every write is a single PUT (or one
    completed multipart upload), which S3 makes visible atomically."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str | None = None,
        client: Any = None,
        etag_cache: Path | None = None,
        sizes: TransferSizes = TransferSizes(),
        workers: int = SYNC_WORKERS,
        on_progress: ProgressFn | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise StoreError(f"invalid S3 bucket name {bucket!r}: write s3://BUCKET[/PREFIX]")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.region = region
        self._client = client
        self.sizes = sizes
        self.workers = workers
        #: Keys per ListObjectsV2 page (S3's maximum).
        self.page_size = 1000
        #: Called with byte counts as sync uploads progress (from one thread at a time).
        self.on_progress = on_progress
        self.etags = EtagCache(etag_cache, sizes)

    @classmethod
    def from_url(cls, url: str, *, region: str | None = None, **kwargs: Any) -> S3Store:
        """The store at `s3://bucket[/prefix]`."""
        if not url.startswith("s3://"):
            raise StoreError(f"{url!r} is not an S3 address: write s3://BUCKET[/PREFIX]")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(bucket, prefix, region=region, **kwargs)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("s3", region=self.region, kind=StoreError)
        return self._client

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _key(self, key: str) -> str:
        return self.prefix + key

    # -- single objects --------------------------------------------------------

    def get(self, key: str) -> bytes:
        def read() -> bytes:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as e:
                self._raise_missing(e, key)
                raise
            data: bytes = response["Body"].read()
            return data

        with aws.translated(f"cannot read {self.uri(key)}", StoreError):
            return aws.retry_reading(self.client, read)

    def _raise_missing(self, error: Exception, key: str) -> None:
        if aws.error_code(error) in ("NoSuchKey", "404"):
            raise KeyNotFound(f"{self.uri(key)} does not exist") from None

    def put(self, key: str, data: bytes) -> None:
        with aws.translated(f"cannot write {self.uri(key)}", StoreError):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        with aws.translated(f"cannot write {self.uri(key)}", StoreError):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
                )
            except Exception as e:
                # 412: the key exists. 409: another conditional write of it is in
                # flight, and it will exist when that completes.
                if aws.error_code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise
        return True

    def exists(self, key: str) -> bool:
        return self.info(key) is not None

    def info(self, key: str) -> ObjectInfo | None:
        with aws.translated(f"cannot read {self.uri(key)}", StoreError):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as e:
                if aws.error_code(e) in ("NoSuchKey", "404"):
                    return None
                raise
        return ObjectInfo(key, int(head["ContentLength"]), _etag(head["ETag"]))

    def put_file(self, key: str, path: Path) -> None:
        self._upload(key, path, path.stat().st_size, None)

    def _upload(self, key: str, path: Path, size: int, progress: ProgressFn | None) -> None:
        with aws.translated(f"cannot upload {path} to {self.uri(key)}", StoreError):
            if size < self.sizes.threshold:
                with path.open("rb") as f:
                    self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=f)
                if progress is not None:
                    progress(size)
            else:
                self.client.upload_file(
                    str(path),
                    self.bucket,
                    self._key(key),
                    Config=self.sizes.transfer_config(),
                    Callback=progress,
                )

    def get_file(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with (
                os.fdopen(fd, "wb") as f,
                aws.translated(f"cannot download {self.uri(key)}", StoreError),
            ):

                def fetch() -> int:
                    f.seek(0)
                    f.truncate()  # what an attempt cut short wrote
                    try:
                        response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                    except Exception as e:
                        self._raise_missing(e, key)
                        raise
                    if int(response["ContentLength"]) < self.sizes.threshold:
                        for block in response["Body"].iter_chunks(_READ_CHUNK):
                            f.write(block)
                    else:
                        # Large: ranged parts in parallel (s3transfer pins them to the
                        # ETag it saw, so a concurrent overwrite cannot mix versions).
                        response["Body"].close()
                        self.client.download_fileobj(
                            self.bucket, self._key(key), f, Config=self.sizes.transfer_config()
                        )
                    return int(response["ContentLength"])

                size = aws.retry_reading(self.client, fetch)
            got = tmp.stat().st_size
            if got != size:
                raise StoreError(
                    f"download of {self.uri(key)} to {path} stopped at {got} of {size} "
                    "bytes; try again"
                )
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # -- many objects ----------------------------------------------------------

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        start = len(self.prefix)
        with aws.translated(f"cannot list {self.uri(prefix)}", StoreError):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=self._key(prefix),
                PaginationConfig={"PageSize": self.page_size},
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][start:], int(obj["Size"]), _etag(obj["ETag"]))

    def delete(self, key: str) -> None:
        with aws.translated(f"cannot delete {self.uri(key)}", StoreError):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def _delete_keys(self, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), _DELETE_BATCH):
            batch = keys[i : i + _DELETE_BATCH]
            with aws.translated(f"cannot delete from {self.url}", StoreError):
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True},
                )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StoreError(
                    f"cannot delete s3://{self.bucket}/{first.get('Key')}: "
                    f"{first.get('Code')} ({first.get('Message')}) and {len(errors) - 1} more"
                )

    def delete_prefix(self, prefix: str) -> int:
        keys = [o.key for o in self.list(prefix)]
        self._delete_keys(keys)
        return len(keys)

    def sync_dir(
        self,
        local: Path,
        prefix: str,
        files: dict[str, Path],
        *,
        on_progress: ProgressFn | None = None,
    ) -> SyncStats:
        """Upload the files whose size or ETag differ from the remote ones, in
        parallel, then delete remote keys under `prefix` that are not in `files`."""
        manifest_key = prefix.rstrip("/") + MANIFEST_SUFFIX if prefix.strip("/") else None
        remote = self._read_manifest(manifest_key) if manifest_key else None
        trusted = remote is not None
        if remote is None:
            remote = {o.key[len(prefix) :]: (o.size, o.etag) for o in self.list(prefix)}
        stats = SyncStats()
        lock = threading.Lock()
        report = on_progress or self.on_progress
        synced: dict[str, tuple[int, str]] = {}
        invalidated = False

        def invalidate() -> None:
            # Before the first change: a sync cut short must leave no manifest.
            nonlocal invalidated
            with lock:
                if trusted and manifest_key and not invalidated:
                    self.delete(manifest_key)
                invalidated = True

        def progress(n: int) -> None:
            if report is not None:
                with lock:
                    report(n)

        def sync_one(rel: str, path: Path) -> None:
            try:
                st = path.stat()
            except OSError as e:
                raise StoreError(f"cannot read {path} to upload it: {e.strerror}") from None
            # Hashed before uploading too: the file is read once into the page cache,
            # and the next sync of an unchanged tree reads nothing.
            etag = self.etags.etag(path, st)
            with lock:
                synced[rel] = (st.st_size, etag)
            if remote.get(rel) == (st.st_size, etag):
                with lock:
                    stats.unchanged += 1
                return
            invalidate()
            self._upload(prefix + rel, path, st.st_size, progress)
            with lock:
                stats.uploaded += 1
                stats.uploaded_bytes += st.st_size

        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="s3sync") as pool:
                futures = [pool.submit(sync_one, rel, path) for rel, path in sorted(files.items())]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for future in done:
                    if future.exception() is not None:
                        pool.shutdown(cancel_futures=True)
                        future.result()
        finally:
            self.etags.save()
        stale = sorted(rel for rel in remote if rel not in files)
        if stale:
            invalidate()
        self._delete_keys([prefix + rel for rel in stale])
        stats.deleted = len(stale)
        if manifest_key and (invalidated or not trusted):
            doc = {"version": MANIFEST_VERSION, "files": dict(sorted(synced.items()))}
            self.put(manifest_key, json.dumps(doc, separators=(",", ":")).encode())
        return stats

    def _read_manifest(self, key: str) -> dict[str, tuple[int, str]] | None:
        try:
            doc = json.loads(self.get(key))
            if doc["version"] != MANIFEST_VERSION:
                return None
            return {str(rel): (int(size), str(etag)) for rel, (size, etag) in doc["files"].items()}
        except KeyNotFound:
            return None
        except (ValueError, TypeError, KeyError, AttributeError):
            return None  # not ours, or damaged: list instead
