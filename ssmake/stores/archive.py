"""Tarballs: deterministic packing, and extraction that refuses anything unsafe.

Packing writes gzip tarballs whose bytes depend only on the names, contents and
executable bits of the files, so the code tarball can be stored under its
sha256. Extraction reads tarballs that came from a store or from a job, so it
trusts nothing in them: every member is checked against the rules of Python's
`data` filter (PEP 706), plus stricter ones of our own, before a single byte is
written, and the result appears at the destination only when all went well.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from ssmake.errors import ArchiveError

_CHUNK = 1 << 20
# Level 6 (gzip's own default) is several times faster than 9 on model weights
# for a few percent of size; it is part of the format, so never vary it.
_COMPRESSLEVEL = 6
# What a broken gzip or tar stream raises while being read.
_CORRUPT = (tarfile.ReadError, tarfile.CompressionError, EOFError, gzip.BadGzipFile, zlib.error)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def pack_code(dest: Path, files: Iterable[tuple[str, Path]]) -> None:
    """Write a deterministic tar.gz of (archive name, source path) pairs to `dest`.

    Entries are sorted by name and carry no time, owner or permission beyond
    "executable or not", so equal inputs give byte-identical tarballs (with the
    same zlib; another zlib build may compress differently, which only costs a
    cache miss). Sources are followed if they are symlinks and must be regular
    files. The file appears at `dest` atomically.
    """
    entries: dict[str, Path] = {}
    for name, source in files:
        key = _archive_name(name)
        if key in entries:
            raise ArchiveError(
                f"cannot pack {dest}: both {entries[key]} and {source} would be stored as '{key}'"
            )
        entries[key] = source
    clashes = sorted(_ancestors(entries) & entries.keys())
    if clashes:
        raise ArchiveError(
            f"cannot pack {dest}: '{clashes[0]}' is a file, yet other files would be inside it"
        )
    _write_tarball(dest, entries, follow_symlinks=True)


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
        hidden_dirs = _ancestors(found)
        merged = {
            name: path
            for name, path in merged.items()
            if name not in hidden_dirs and not _ancestors([name]) & found.keys()
        }
        merged.update(found)
    _write_tarball(dest, merged, follow_symlinks=False)


def extract(
    src: Path,
    dest: Path,
    *,
    max_total_bytes: int = 50 * 2**30,
    max_members: int = 1_000_000,
) -> list[str]:
    """Extract the tar.gz `src` so that `dest` holds exactly its content.

    Every member is checked before anything is written; the archive is refused
    (ArchiveError naming the member and the rule) if a member has an absolute
    path or would land outside `dest`, is a device or fifo, is a symlink or
    hardlink pointing outside `dest` or through another symlink, or if the
    members exceed `max_members` or their sizes `max_total_bytes`. A corrupt or
    truncated archive is an ArchiveError too. The content is extracted beside
    `dest` and swapped in only on success, replacing what was there; on any
    error `dest` is left as it was. Returns the extracted non-directory paths,
    relative and sorted.
    """
    members = _read_checked(src, max_total_bytes, max_members)
    dest = Path(os.path.abspath(dest))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".extract"))
    except OSError as e:
        raise ArchiveError(f"cannot extract {src} into {dest}: {e}") from e
    aside = work / "old"
    try:
        fresh = work / "new"
        fresh.mkdir()
        _extract_members(src, fresh, members)
        _swap_in(fresh, dest, aside)
    except OSError as e:
        raise ArchiveError(f"cannot extract {src} into {dest}: {e}") from e
    finally:
        # Only when the swap failed halfway does `aside` hold the sole copy of the old dest.
        if os.path.lexists(dest) or not os.path.lexists(aside):
            shutil.rmtree(work, ignore_errors=True)
    return _file_names(members)


def extract_into(
    src: Path,
    dest: Path,
    *,
    max_total_bytes: int = 50 * 2**30,
    max_members: int = 1_000_000,
) -> list[str]:
    """Extract the tar.gz `src` into `dest`, keeping what `dest` already holds.

    The same checks as `extract` apply, and besides no member may go through a
    symlink or a file already in `dest`, or replace a directory there (or be
    a directory where `dest` has something else); all of it is checked before
    anything is written. Files of the archive replace files of the same name.
    The archive is extracted beside `dest` and its entries are then renamed into
    place, so only a failing rename (not a broken archive) can leave a partial
    merge. Returns the extracted non-directory paths, relative and sorted.
    """
    if not os.path.lexists(dest):
        return extract(src, dest, max_total_bytes=max_total_bytes, max_members=max_members)
    members = _read_checked(src, max_total_bytes, max_members)
    dest = Path(os.path.abspath(dest))
    if dest.is_symlink() or not dest.is_dir():
        raise ArchiveError(f"cannot extract {src} into {dest}: it is not a directory")
    for member in members:
        _check_against_tree(src, dest, member)
    try:
        work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".extract"))
    except OSError as e:
        raise ArchiveError(f"cannot extract {src} into {dest}: {e}") from e
    try:
        _extract_members(src, work, members)
        for name in sorted({m.name for m in members}):
            source, target = work / name, dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir() and not source.is_symlink():
                target.mkdir(exist_ok=True)
            else:
                os.replace(source, target)
    except OSError as e:
        raise ArchiveError(f"cannot extract {src} into {dest}: {e}") from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _file_names(members)


def _archive_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"archive name {name!r} is not a relative path inside the archive")
    return str(path)


def _ancestors(names: Iterable[str]) -> set[str]:
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


def _write_tarball(dest: Path, entries: Mapping[str, Path], *, follow_symlinks: bool) -> None:
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
                _add_file(tar, name, entries[name], follow_symlinks=follow_symlinks)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ArchiveError(f"cannot write {dest}: {e}") from e
        raise


def _add_file(tar: tarfile.TarFile, name: str, source: Path, *, follow_symlinks: bool) -> None:
    # O_NONBLOCK so that a fifo opens at once (and is then refused) instead of hanging.
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    with open(os.open(source, flags), "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ArchiveError(f"cannot pack {source}: it is not a regular file")
        info = tarfile.TarInfo(name)
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, f)


def _refusal(src: Path, name: str, rule: str) -> ArchiveError:
    return ArchiveError(f"refusing to extract {src}: member '{name}' {rule}")


def _read_checked(src: Path, max_total_bytes: int, max_members: int) -> list[tarfile.TarInfo]:
    """Read the member list of `src` and check it all; the members come back normalised."""
    try:
        with src.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            with tarfile.open(fileobj=gz, mode="r:") as tar:
                members = _read_members(src, tar, max_total_bytes, max_members)
            # The gzip trailer (CRC, length) is only checked once it is read.
            while gz.read(_CHUNK):
                pass
    except _CORRUPT as e:
        raise ArchiveError(f"{src} is corrupt or truncated: {e}") from e
    except OSError as e:
        raise ArchiveError(f"cannot read {src}: {e}") from e
    return _check_paths(src, members)


def _read_members(
    src: Path, tar: tarfile.TarFile, max_total_bytes: int, max_members: int
) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        if len(members) == max_members:
            raise _refusal(src, member.name, f"is past the limit of {max_members} members")
        if member.size < 0:
            raise _refusal(src, member.name, "has a negative size")
        total += member.size
        if total > max_total_bytes:
            raise _refusal(
                src,
                member.name,
                f"brings the total size to {total} bytes, over the limit of {max_total_bytes}",
            )
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise _refusal(src, member.name, f"is a {_kind(member)}, which is never extracted")
        if member.name.startswith("/"):
            raise _refusal(src, member.name, "has an absolute path")
        if (member.issym() or member.islnk()) and member.linkname.startswith("/"):
            link = "symlink" if member.issym() else "hardlink"
            raise _refusal(
                src, member.name, f"is a {link} to the absolute path '{member.linkname}'"
            )
        members.append(member)
    return members


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "fifo"
    return f"special file (tar type {member.type!r})"


def _check_paths(src: Path, members: list[tarfile.TarInfo]) -> list[tarfile.TarInfo]:
    """Resolve names and link targets; return the members renamed to their clean paths."""
    symlinks = {os.path.normpath(m.name) for m in members if m.issym()}
    checked: list[tarfile.TarInfo] = []
    regular: set[str] = set()
    for member in members:
        name = _resolve(src, member.name, [], member.name, symlinks, "would be written")
        if not name:
            if member.isdir():
                continue
            raise _refusal(src, member.name, "would replace the destination itself")
        if member.issym():
            parent = name.split("/")[:-1]
            _resolve(src, member.name, parent, member.linkname, symlinks, "is a symlink pointing")
            checked.append(member.replace(name=name, deep=False))
        elif member.islnk():
            target = _resolve(
                src, member.name, [], member.linkname, symlinks, "is a hardlink pointing"
            )
            if target not in regular:
                raise _refusal(
                    src,
                    member.name,
                    f"is a hardlink to '{member.linkname}', "
                    "which is not a regular file earlier in the archive",
                )
            checked.append(member.replace(name=name, linkname=target, deep=False))
        else:
            checked.append(member.replace(name=name, deep=False))
        if member.isreg() or member.islnk():
            regular.add(name)
    dirs = {m.name for m in checked if m.isdir()}
    files = {m.name for m in checked if not m.isdir()}
    parents = _ancestors(m.name for m in checked)
    for member in checked:
        if member.name in dirs and member.name in files:
            raise _refusal(src, member.name, "appears both as a directory and as a file")
        if member.name in files and member.name in parents:
            raise _refusal(src, member.name, "is a file, yet other members would be inside it")
    return checked


def _resolve(
    src: Path, member: str, start: list[str], path: str, symlinks: set[str], what: str
) -> str:
    """Follow `path` from the directory `start` lexically, as the kernel would.

    Lexical resolution matches the kernel's only if no step goes through a
    symlink of the archive, so such a step is refused rather than followed.
    """
    parts = list(start)
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if parts and "/".join(parts) in symlinks:
            raise _refusal(src, member, f"{what} through the symlink member '{'/'.join(parts)}'")
        if part != "..":
            parts.append(part)
        elif parts:
            parts.pop()
        else:
            raise _refusal(src, member, f"{what} outside the destination")
    return "/".join(parts)


def _check_against_tree(src: Path, dest: Path, member: tarfile.TarInfo) -> None:
    """For merging: the member must neither go through nor clobber what `dest` holds."""
    for parent in reversed(PurePosixPath(member.name).parents[:-1]):
        existing = dest / parent
        if existing.is_symlink() or (existing.exists() and not existing.is_dir()):
            raise _refusal(src, member.name, f"would be written through {existing}")
    target = dest / member.name
    if member.isdir() and (target.is_symlink() or (target.exists() and not target.is_dir())):
        raise _refusal(src, member.name, f"is a directory but {target} is not")
    if not member.isdir() and target.is_dir() and not target.is_symlink():
        raise _refusal(src, member.name, f"would replace the directory {target}")


def _extract_members(src: Path, into: Path, members: list[tarfile.TarInfo]) -> None:
    # The checks above are ours, so the messages are; the data filter stays as a second net.
    try:
        with (
            src.open("rb") as raw,
            gzip.GzipFile(fileobj=raw, mode="rb") as gz,
            tarfile.open(fileobj=gz, mode="r:") as tar,
        ):
            tar.extractall(into, members=members, filter=tarfile.data_filter)
    except tarfile.FilterError as e:
        raise ArchiveError(f"refusing to extract {src}: {e}") from e
    except _CORRUPT as e:
        raise ArchiveError(f"{src} is corrupt or truncated: {e}") from e
    except (OSError, tarfile.TarError) as e:
        raise ArchiveError(f"cannot extract {src} into {into}: {e}") from e


def _swap_in(fresh: Path, dest: Path, aside: Path) -> None:
    """Put `fresh` at `dest`, moving what was there to `aside` (removed by the caller)."""
    if not os.path.lexists(dest):
        os.rename(fresh, dest)
        return
    os.rename(dest, aside)
    try:
        os.rename(fresh, dest)
    except OSError as e:
        try:
            os.rename(aside, dest)
        except OSError:
            raise ArchiveError(
                f"cannot replace {dest}: {e}; its previous content is in {aside}"
            ) from e
        raise ArchiveError(f"cannot replace {dest}: {e}") from e


def _file_names(members: list[tarfile.TarInfo]) -> list[str]:
    return sorted({m.name for m in members if not m.isdir()})
