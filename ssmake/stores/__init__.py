"""Where state, inputs, code, outputs and markers live.

A store is a flat key space (`<project>/<task>/...`), the same layout whether it
is a local directory or an S3 bucket. `open_store` picks the implementation from
the store's address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ssmake.errors import StoreError
from ssmake.plan.snapshot import FileEntry


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key (relative to the store root), size and ETag."""

    key: str
    size: int
    etag: str
    # S3's ETags follow the bytes; a local store's follow the file's identity.
    etag_is_content: bool = True


@dataclass
class SyncStats:
    """What a directory sync did."""

    uploaded: int = 0
    uploaded_bytes: int = 0
    deleted: int = 0
    unchanged: int = 0


ProgressFn = Callable[[int], None]


class Store(Protocol):
    """Keyed blob storage with the few operations ssmake needs."""

    @property
    def url(self) -> str:
        """The store's root address: a `file://` URL or `s3://bucket[/prefix]`."""
        ...

    def uri(self, key: str) -> str:
        """The absolute address of a key, as a job's channel or output path names it."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; raises KeyNotFound."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write an object atomically: readers see the old or the new bytes, never a part."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write only when the key does not exist; False when it already did."""
        ...

    def exists(self, key: str) -> bool: ...

    def info(self, key: str) -> ObjectInfo | None: ...

    def put_file(self, key: str, path: Path) -> None: ...

    def get_file(self, key: str, path: Path) -> None:
        """Download to `path` through a temporary name, so a partial file never shows."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (a `/`-ended prefix lists a folder)."""
        ...

    def names(self, prefix: str) -> set[str]:
        """The distinct names that follow `prefix` up to the next `/` in the keys that
        start with it, as S3 lists with a delimiter: one level, not the whole tree."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def sync_dir(
        self,
        prefix: str,
        files: Mapping[str, FileEntry],
        *,
        on_progress: ProgressFn | None = None,
    ) -> SyncStats:
        """Make `prefix` hold exactly the snapshot's `files` (relative name -> entry),
        calling `on_progress(n)` as each n bytes are uploaded. A file is skipped only
        when the stored copy has its content hash; every byte sent is verified
        against the entry (ChangedWhileStaging otherwise)."""
        ...


def open_store(address: str, *, root: Path, region: str | None = None) -> Store:
    """The store at `address`: `s3://bucket[/prefix]`, else a directory relative to `root`."""
    if address.startswith("s3://"):
        from ssmake.stores.s3 import S3Store

        return S3Store.from_url(address, region=region)
    from ssmake.stores.local import LocalStore

    path = Path(address.removeprefix("file://"))
    return LocalStore(path if path.is_absolute() else root / path)


def store_for_uri(uri: str, *, region: str | None = None) -> tuple[Store, str]:
    """The store holding an absolute URI, and the key of the URI within it."""
    if uri.startswith("s3://"):
        from ssmake.stores.s3 import S3Store

        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return S3Store(bucket, "", region=region), key
    from ssmake.stores.local import LocalStore

    return LocalStore(Path("/")), uri.removeprefix("file://").lstrip("/")


def local_path(root: Path, rel: str, uri: str) -> Path:
    """Where the object `uri`, named `rel` below the prefix being fetched, lands in
    `root`. Keys in a bucket are any text: one that would land outside `root`
    (absolute, or through `..`) is refused, as the archive rules refuse a member."""
    if not rel or rel.startswith("/") or ".." in rel.split("/") or "\0" in rel:
        raise StoreError(
            f"refusing to download {uri}: its name would put it outside {root}; "
            "rename or remove that object"
        )
    return root / rel
