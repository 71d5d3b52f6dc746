"""Extracting tarballs that came from a store or from a job, trusting nothing in them.

Every member is checked against the rules of Python's `data` filter (PEP 706),
plus stricter ones of our own, before a single byte is written, and the result
appears at the destination only when all went well.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from ssmake.errors import EXIT_FAILED, ArchiveError
from ssmake.stores.archive import ancestors

_CHUNK = 1 << 20
# What a broken gzip or tar stream raises while being read.
_CORRUPT = (tarfile.ReadError, tarfile.CompressionError, EOFError, gzip.BadGzipFile, zlib.error)


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
        raise _disk_error(src, dest, e) from e
    aside = work / "old"
    try:
        fresh = work / "new"
        fresh.mkdir()
        _extract_members(src, fresh, members)
        _swap_in(fresh, dest, aside)
    except OSError as e:
        raise _disk_error(src, dest, e) from e
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
        raise _disk_error(src, dest, e) from e
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
        raise _disk_error(src, dest, e) from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _file_names(members)


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
    parents = ancestors(m.name for m in checked)
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
    except OSError as e:
        raise _disk_error(src, into, e) from e
    except tarfile.TarError as e:
        raise ArchiveError(f"cannot extract {src} into {into}: {e}") from e


def _disk_error(src: Path, dest: Path, e: OSError) -> ArchiveError:
    """A full or read-only disk is no fault of the archive: exit 1, as a storage error."""
    return ArchiveError(f"cannot extract {src} into {dest}: {e}", EXIT_FAILED)


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
