"""A store in a local directory, with S3's semantics where ssmake relies on them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ssmake.errors import KeyNotFound, StoreError
from ssmake.stores import ObjectInfo, ProgressFn, SyncStats


def _etag(st: os.stat_result) -> str:
    # Not a content hash: a local file's identity for change detection, like rsync's
    # quick check. Content hashes live in the marker's fingerprint components.
    return f"{st.st_mtime_ns}-{st.st_size}"


class LocalStore:
    """Keys are files under `root`; writes go through a temporary file and a rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    def uri(self, key: str) -> str:
        # Keep a trailing "/": it makes the URI a folder prefix, as on S3.
        return f"file://{self.root / key}" + ("/" if key.endswith("/") else "")

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"invalid store key {key!r}")
        return self.root / key

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFound(f"{self.uri(key)} does not exist") from None

    def _write_atomic(self, path: Path, write: str | bytes | Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(write, Path):
                    with write.open("rb") as src:
                        shutil.copyfileobj(src, f, 1 << 20)
                else:
                    f.write(write.encode() if isinstance(write, str) else write)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, key: str, data: bytes) -> None:
        self._write_atomic(self._path(key), data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            # link() fails when the target exists: an atomic create-if-absent.
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def info(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        st = path.stat()
        return ObjectInfo(key, st.st_size, _etag(st))

    def put_file(self, key: str, path: Path) -> None:
        self._write_atomic(self._path(key), path)

    def get_file(self, key: str, path: Path) -> None:
        src = self._path(key)
        if not src.is_file():
            raise KeyNotFound(f"{self.uri(key)} does not exist")
        self._write_atomic(path, src)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix.rstrip("/")) if prefix.rstrip("/") else self.root
        start = base if prefix.endswith("/") or not prefix else base.parent
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    st = full.stat()
                    yield ObjectInfo(key, st.st_size, _etag(st))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        keys = [o.key for o in self.list(prefix)]
        for key in keys:
            self.delete(key)
        target = self._path(prefix.rstrip("/")) if prefix.rstrip("/") else None
        if target is not None and target.is_dir() and prefix.endswith("/"):
            shutil.rmtree(target, ignore_errors=True)
        return len(keys)

    def sync_dir(
        self,
        local: Path,
        prefix: str,
        files: dict[str, Path],
        *,
        on_progress: ProgressFn | None = None,
    ) -> SyncStats:
        # The quick check rsync uses: a copy keeps size and mtime, so equal ones
        # mean the file is unchanged and nothing is read.
        stats = SyncStats()
        existing = {o.key[len(prefix) :]: o for o in self.list(prefix)}
        for rel, src in sorted(files.items()):
            st = src.stat()
            dest = self._path(prefix + rel)
            old = existing.pop(rel, None)
            if old is not None and old.etag == _etag(st):
                stats.unchanged += 1
                continue
            self._write_atomic(dest, src)
            os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
            stats.uploaded += 1
            stats.uploaded_bytes += st.st_size
            if on_progress is not None:
                on_progress(st.st_size)
        for rel in existing:
            self.delete(prefix + rel)
            stats.deleted += 1
        return stats
