"""Tarballs, packed deterministically.

A tarball's bytes depend only on the names, contents and executable bits of
its files, so the code tarball can be stored under its sha256. Reading one back,
which trusts nothing in it, is `ssmake.stores.extract`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from ssmake.errors import ArchiveError
from ssmake.plan.snapshot import ChangedWhileStaging, FileEntry, VerifiedReader

_CHUNK = 1 << 20
# Level 6 (gzip's own default) is several times faster than 9 on model weights
# for a few percent of size; it is part of the format, so never vary it.
_COMPRESSLEVEL = 6


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def pack_code(
    dest: Path,
    files: Iterable[tuple[str, Path]],
    *,
    expected: Mapping[str, FileEntry] | None = None,
) -> None:
    """Write a deterministic tar.gz of (archive name, source path) pairs to `dest`.

    Entries are sorted by name and carry no time, owner or permission beyond
    "executable or not", so equal inputs give byte-identical tarballs (with the
    same zlib; another zlib build may compress differently, which only costs a
    cache miss). Sources are followed if they are symlinks and must be regular
    files. The file appears at `dest` atomically.

    A file named in `expected` (a snapshot's code files) is verified as it is
    streamed in: size, executable bit and sha256 must be the entry's, or packing
    stops with ChangedWhileStaging and no tarball appears.
    """
    entries: dict[str, Path] = {}
    for name, source in files:
        key = _archive_name(name)
        if key in entries:
            raise ArchiveError(
                f"cannot pack {dest}: both {entries[key]} and {source} would be stored as '{key}'"
            )
        entries[key] = source
    clashes = sorted(ancestors(entries) & entries.keys())
    if clashes:
        raise ArchiveError(
            f"cannot pack {dest}: '{clashes[0]}' is a file, yet other files would be inside it"
        )
    _write_tarball(dest, entries, follow_symlinks=True, expected=expected or {})


def pack_dirs(dest: Path, dirs: Sequence[Path]) -> None:
    """Write a tar.gz of the merged contents of `dirs` to `dest`, later dirs winning.

    This is how the model dirs of all instances become one model.tar.gz. Only
    regular files are stored, named relative to their dir: symlinks (to files
    or dirs) are skipped, so nothing outside the dirs is ever read, and so are
    sockets and fifos. A file in a later dir also hides an earlier dir of the
    same name and vice versa. No dirs, or empty ones, give a valid empty
    tarball. Packing is deterministic, like `pack_code`, and atomic.
    """
    merged: dict[str, Path] = {}
    for root in dirs:
        try:
            found = dict(_regular_files(root))
        except OSError as e:
            raise ArchiveError(f"cannot pack {dest}: cannot read {root}: {e}") from e
        hidden_dirs = ancestors(found)
        merged = {
            name: path
            for name, path in merged.items()
            if name not in hidden_dirs and not ancestors([name]) & found.keys()
        }
        merged.update(found)
    _write_tarball(dest, merged, follow_symlinks=False)


def _archive_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"archive name {name!r} is not a relative path inside the archive")
    return str(path)


def ancestors(names: Iterable[str]) -> set[str]:
    """Every proper parent directory of `names`, without the root."""
    return {str(parent) for name in names for parent in PurePosixPath(name).parents} - {"."}


def _regular_files(root: Path) -> Iterable[tuple[str, Path]]:
    pending = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((f"{prefix}{entry.name}/", Path(entry.path)))
                elif entry.is_file(follow_symlinks=False):
                    yield f"{prefix}{entry.name}", Path(entry.path)


def _write_tarball(
    dest: Path,
    entries: Mapping[str, Path],
    *,
    follow_symlinks: bool,
    expected: Mapping[str, FileEntry] | None = None,
) -> None:
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as e:
        raise ArchiveError(f"cannot write {dest}: {e}") from e
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=_COMPRESSLEVEL
            ) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name in sorted(entries):
                entry = (expected or {}).get(name)
                if entry is not None:
                    _add_verified(tar, name, entry)
                else:
                    _add_file(tar, name, entries[name], follow_symlinks=follow_symlinks)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ArchiveError(f"cannot write {dest}: {e}") from e
        raise


def _add_verified(tar: tarfile.TarFile, name: str, entry: FileEntry) -> None:
    with VerifiedReader(entry) as reader:
        info = _info(name, entry.size, entry.executable)
        try:
            tar.addfile(info, reader)
        except OSError:
            raise ChangedWhileStaging(entry) from None  # it shrank while being read
        reader.finish()


def _info(name: str, size: int, executable: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o755 if executable else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_file(tar: tarfile.TarFile, name: str, source: Path, *, follow_symlinks: bool) -> None:
    # O_NONBLOCK so that a fifo opens at once (and is then refused) instead of hanging.
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    with open(os.open(source, flags), "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ArchiveError(f"cannot pack {source}: it is not a regular file")
        tar.addfile(_info(name, st.st_size, bool(st.st_mode & 0o111)), f)
