"""A store in a local directory, with S3's semantics where ssmake relies on them."""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ssmake.errors import EXIT_FAILED, KeyNotFound, StoreError
from ssmake.plan.snapshot import FileEntry, VerifiedReader
from ssmake.stores import ObjectInfo, ProgressFn, SyncStats
from ssmake.stores.s3_sync import MANIFEST_SUFFIX

# Where writes are staged before their rename, outside every key: a key may be
# any name, so no name pattern can mark a temporary file.
TMP_DIR = ".ssmake-tmp"
_MANIFEST_VERSION = 1
# The numbers of this process's temporary files (with its pid, unique on the host).
_tmp_names = itertools.count()
# A manifest's line for one stored file: [size, sha256, the copy's ETag].
_Record = list[object]


def _etag(st: os.stat_result) -> str:
    # Not a content hash: a stored object's identity, to tell that it is still the
    # object that was recorded. Content hashes are the snapshot's and the marker's.
    return f"{st.st_mtime_ns}-{st.st_size}"


# Linux's FICLONE ioctl: a copy-on-write copy (btrfs, XFS, bcachefs), sharing the
# blocks until either side is written. Elsewhere the bytes are copied.
_FICLONE = 0x40049409


def _clone(src: BinaryIO, dst: BinaryIO) -> bool:
    """Make `dst` a copy-on-write copy of `src` where the file system can; never a
    link, so that writing either one never changes the other."""
    try:
        import fcntl

        fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
    except (ImportError, OSError):
        return False
    return True


def _holds_a_file(path: str) -> bool:
    """Whether a directory holds a file at any depth: a key, as an empty one is not.
    Returns at the first file found (a job's directory: its logs/, then a log)."""
    try:
        with os.scandir(path) as entries:
            dirs = []
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    return True
                dirs.append(entry.path)
    except OSError:
        return False
    return any(_holds_a_file(d) for d in dirs)


def _into_place(place: Callable[[str | Path, Path], None], src: str | Path, dest: Path) -> None:
    """`place(src, dest)`, a rename or a link, making the directory of `dest` when
    missing (a key's first write) rather than asking before every write."""
    try:
        place(src, dest)
    except FileNotFoundError:
        if not os.path.exists(src):
            raise
        dest.parent.mkdir(parents=True, exist_ok=True)
        place(src, dest)


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key, st.st_size, _etag(st), etag_is_content=False)


@contextmanager
def translated_os_error(doing: str) -> Iterator[None]:
    """An OSError (a read-only or full disk, a permission, a name too long) becomes a
    StoreError naming the operation and the path, exit 1: a task fails, the others go
    on with -k. A write never leaves a half-written key (see _write_atomic)."""
    try:
        yield
    except OSError as e:
        raise _os_error(doing, e) from None


def _os_error(doing: str, e: OSError) -> StoreError:
    where = f" ({e.filename})" if e.filename else ""
    return StoreError(
        f"cannot {doing}{where}: {e.strerror or e}; free some space or fix the "
        "permissions of the store, then run again",
        EXIT_FAILED,
    )


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
        except OSError as e:
            raise _os_error(f"read {self.uri(key)}", e) from None

    def file(self, key: str) -> Path:
        """The file holding a key, to be read in place (never written)."""
        return self._path(key)

    def _tmp_dir(self, path: Path) -> Path:
        """Keys are staged in the store's own temporary directory; files written
        elsewhere (downloads) beside their destination, on its file system.

        A store opened by URI (`file:///…`, a job's) has `/` for its root, maybe on
        another file system than the store: it stages in the temporary directory of
        the store the key is in, found as the nearest one above the key."""
        if not path.is_relative_to(self.root):
            return path.parent
        if self.root != Path(self.root.anchor):
            return self.root / TMP_DIR  # made by _create_tmp when missing
        for parent in path.parents:
            if parent == self.root:
                break
            if (parent / TMP_DIR).is_dir():
                return parent / TMP_DIR
        return path.parent

    def _create_tmp(self, path: Path) -> tuple[int, str]:
        """A new temporary file for writing `path` (as tempfile.mkstemp makes one,
        mode 0600, but without its random names: a build writes thousands), making
        its directory when missing."""
        tmp_dir = self._tmp_dir(path)
        while True:
            name = f"{tmp_dir}/.{path.name}.{os.getpid()}-{next(_tmp_names)}.tmp"
            try:
                return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), name
            except FileExistsError:
                continue  # left by a process that had this pid
            except FileNotFoundError:
                tmp_dir.mkdir(parents=True, exist_ok=True)
                return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), name

    def _write_atomic(self, path: Path, write: str | bytes | Path | VerifiedReader) -> None:
        fd, tmp = self._create_tmp(path)
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(write, Path):
                    with write.open("rb") as src:
                        if not _clone(src, f):
                            shutil.copyfileobj(src, f, 1 << 20)
                elif isinstance(write, VerifiedReader):
                    shutil.copyfileobj(write, f, 1 << 20)
                    write.finish()
                else:
                    f.write(write.encode() if isinstance(write, str) else write)
            _into_place(os.replace, tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, key: str, data: bytes) -> None:
        with translated_os_error(f"write {self.uri(key)}"):
            self._write_atomic(self._path(key), data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        with translated_os_error(f"write {self.uri(key)}"):
            return self._put_if_absent(key, data)

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        fd, tmp = self._create_tmp(path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            # link() fails when the target exists: an atomic create-if-absent.
            _into_place(os.link, tmp, path)
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
        return _info(key, path.stat())

    def put_file(self, key: str, path: Path) -> None:
        with translated_os_error(f"copy {path} to {self.uri(key)}"):
            self._write_atomic(self._path(key), path)

    def move_file(self, key: str, path: Path) -> None:
        """put_file for a file nobody needs after: renamed into the store where it is
        on the store's file system (no copy of a model's bytes), copied elsewhere;
        `path` is gone either way."""
        dest = self._path(key)
        try:
            _into_place(os.replace, path, dest)
            return
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise _os_error(f"move {path} to {self.uri(key)}", e) from None
        self.put_file(key, path)  # another file system: copied
        path.unlink()

    def get_file(self, key: str, path: Path) -> None:
        src = self._path(key)
        if not src.is_file():
            raise KeyNotFound(f"{self.uri(key)} does not exist")
        with translated_os_error(f"copy {self.uri(key)} to {path}"):
            self._write_atomic(path, src)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix.rstrip("/")) if prefix.rstrip("/") else self.root
        start = base if prefix.endswith("/") or not prefix else base.parent
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            if dirpath == str(self.root) and TMP_DIR in dirnames:
                dirnames.remove(TMP_DIR)
            dirnames.sort()
            for name in sorted(filenames):
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield _info(key, full.stat())

    def names(self, prefix: str) -> set[str]:
        head, _, stem = prefix.rpartition("/")
        base = self._path(head) if head else self.root
        found = set()
        try:
            with os.scandir(base) as entries:
                for entry in entries:
                    if not entry.name.startswith(stem) or (not head and entry.name == TMP_DIR):
                        continue
                    if entry.is_file() or (entry.is_dir() and _holds_a_file(entry.path)):
                        found.add(entry.name[len(stem) :])
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as e:
            raise _os_error(f"list {self.uri(prefix)}", e) from None
        return found

    def delete(self, key: str) -> None:
        with translated_os_error(f"delete {self.uri(key)}"):
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
        prefix: str,
        files: Mapping[str, FileEntry],
        *,
        on_progress: ProgressFn | None = None,
    ) -> SyncStats:
        """Copy each file whose content (by the snapshot's sha256) is not the stored
        copy's, verifying the bytes as they are copied. What is stored is known from
        a manifest beside the prefix: content hash and the copy's identity."""
        stats = SyncStats()
        manifest_key = prefix.rstrip("/") + MANIFEST_SUFFIX
        recorded = self._read_manifest(manifest_key)
        existing = {o.key[len(prefix) :]: o for o in self.list(prefix)}
        synced: dict[str, _Record] = {}
        for rel, entry in sorted(files.items()):
            old = existing.pop(rel, None)
            record = recorded.get(rel)
            if (
                old is not None
                and record is not None
                and record == [entry.size, entry.sha256, old.etag]
            ):
                stats.unchanged += 1
                synced[rel] = record
                continue
            dest = self._path(prefix + rel)
            with (
                translated_os_error(f"copy {entry.path} to {self.uri(prefix + rel)}"),
                VerifiedReader(entry) as reader,
            ):
                self._write_atomic(dest, reader)
            synced[rel] = [entry.size, entry.sha256, _etag(dest.stat())]
            stats.uploaded += 1
            stats.uploaded_bytes += entry.size
            if on_progress is not None:
                on_progress(entry.size)
        for rel in existing:
            self.delete(prefix + rel)
            stats.deleted += 1
        if synced != recorded:
            doc = {"version": _MANIFEST_VERSION, "files": synced}
            self.put(manifest_key, json.dumps(doc, separators=(",", ":")).encode())
        return stats

    def _read_manifest(self, key: str) -> dict[str, _Record]:
        try:
            doc = json.loads(self.get(key))
            if doc["version"] == _MANIFEST_VERSION and isinstance(doc["files"], dict):
                return {str(k): list(v) for k, v in doc["files"].items()}
        except (KeyNotFound, ValueError, TypeError, KeyError):
            pass  # none yet, or damaged: every file is copied again
        return {}
