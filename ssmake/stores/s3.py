"""A store in an S3 bucket, or any S3-compatible endpoint (AWS_ENDPOINT_URL, moto).

Uploads and large downloads use the part sizes of one `TransferSizes`, so that a
local file's ETag is known before it is uploaded (`s3_etags`); directory sync,
which relies on that, is in `s3_sync`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ssmake import aws
from ssmake.errors import KeyNotFound, StoreError
from ssmake.plan.snapshot import FileEntry
from ssmake.stores import ObjectInfo, ProgressFn, SyncStats
from ssmake.stores.s3_etags import MIB, TransferSizes
from ssmake.stores.s3_sync import sync_prefix

SYNC_WORKERS = 16
_READ_CHUNK = MIB
_DELETE_BATCH = 1000  # DeleteObjects' limit
_DEFAULT_SIZES = TransferSizes()


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
        sizes: TransferSizes = _DEFAULT_SIZES,
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
        self.upload(key, path, path.stat().st_size, None)

    def upload_bytes(self, key: str, data: bytes, progress: ProgressFn | None) -> None:
        with aws.translated(f"cannot upload to {self.uri(key)}", StoreError):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        if progress is not None:
            progress(len(data))

    def upload(self, key: str, path: Path, size: int, progress: ProgressFn | None) -> None:
        """Upload `size` bytes of `path`, calling `progress(n)` as each n are sent."""
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

    def names(self, prefix: str) -> set[str]:
        full = self._key(prefix)
        found = set()
        with aws.translated(f"cannot list {self.uri(prefix)}", StoreError):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=full,
                Delimiter="/",
                PaginationConfig={"PageSize": self.page_size},
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    found.add(common["Prefix"][len(full) :].rstrip("/"))
                for obj in page.get("Contents", []):
                    found.add(obj["Key"][len(full) :])
        return found

    def delete(self, key: str) -> None:
        with aws.translated(f"cannot delete {self.uri(key)}", StoreError):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete `keys` in batches of DeleteObjects' limit."""
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
        self.delete_keys(keys)
        return len(keys)

    def sync_dir(
        self,
        prefix: str,
        files: Mapping[str, FileEntry],
        *,
        on_progress: ProgressFn | None = None,
    ) -> SyncStats:
        """Upload the files whose content the remote copies do not have, verified
        against the snapshot, in parallel, then delete remote keys under `prefix`
        that are not in `files` (see `s3_sync`)."""
        return sync_prefix(self, prefix, files, on_progress)
