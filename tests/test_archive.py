"""Tarballs: deterministic packing and extraction that refuses hostile archives."""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ssmake.errors import ArchiveError
from ssmake.stores.archive import pack_code, pack_dirs, sha256_file
from ssmake.stores.extract import extract, extract_into


def write(path: Path, text: str, *, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def tree(root: Path) -> dict[str, str]:
    """Every path under root: file content, a symlink's target, or "<dir>"."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "<dir>"
            else:
                found[rel] = path.read_bytes().decode(errors="backslashreplace")
    return found


def members(tarball: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(tarball, "r:gz") as tar:
        return tar.getmembers()


def add(
    tar: tarfile.TarFile,
    name: str,
    data: bytes = b"",
    *,
    kind: bytes = tarfile.REGTYPE,
    linkname: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


Fill = Callable[[tarfile.TarFile], None]


def entry(
    name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, linkname: str = ""
) -> Fill:
    return lambda tar: add(tar, name, data, kind=kind, linkname=linkname)


def build(path: Path, *fills: Fill) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for fill in fills:
            fill(tar)
    return path


# pack_code


def test_pack_code_is_deterministic_whatever_the_mtimes(tmp_path: Path) -> None:
    a = write(tmp_path / "src" / "a.py", "print('a')\n")
    b = write(tmp_path / "src" / "pkg" / "b.py", "B = 1\n", mode=0o755)
    first, second = tmp_path / "one.tar.gz", tmp_path / "two.tar.gz"

    pack_code(first, [("pkg/b.py", b), ("a.py", a)])
    os.utime(a, (1_000_000, 1_000_000))
    os.utime(b, (2_000_000, 2_000_000))
    pack_code(second, [("a.py", a), ("pkg/b.py", b)])

    assert first.read_bytes() == second.read_bytes()
    assert sha256_file(first) == sha256_file(second)
    with gzip.open(first) as gz:
        gz.read()
    header = first.read_bytes()[:10]
    assert header[3] == 0  # gzip flags: no file name
    assert header[4:8] == b"\0\0\0\0"  # gzip mtime
    infos = members(first)
    assert [m.name for m in infos] == ["a.py", "pkg/b.py"]
    assert [(m.mode, m.mtime, m.uid, m.gid, m.uname, m.gname) for m in infos] == [
        (0o644, 0, 0, 0, "", ""),
        (0o755, 0, 0, 0, "", ""),
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_pack_code_content_change_changes_the_hash(tmp_path: Path) -> None:
    a = write(tmp_path / "a.py", "x = 1\n")
    pack_code(tmp_path / "one.tar.gz", [("a.py", a)])
    write(a, "x = 2\n")
    pack_code(tmp_path / "two.tar.gz", [("a.py", a)])
    assert sha256_file(tmp_path / "one.tar.gz") != sha256_file(tmp_path / "two.tar.gz")


def test_pack_code_refuses_two_sources_for_one_name(tmp_path: Path) -> None:
    a, b = write(tmp_path / "a.py", "a"), write(tmp_path / "b.py", "b")
    with pytest.raises(ArchiveError, match=r"'x\.py'"):
        pack_code(tmp_path / "code.tar.gz", [("x.py", a), ("./x.py", b)])
    assert not (tmp_path / "code.tar.gz").exists()


def test_pack_code_missing_source_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="cannot write"):
        pack_code(tmp_path / "code.tar.gz", [("a.py", tmp_path / "missing.py")])
    assert list(tmp_path.iterdir()) == []


# pack_dirs


def test_pack_dirs_merges_later_dirs_winning(tmp_path: Path) -> None:
    first, second = tmp_path / "algo-1", tmp_path / "algo-2"
    write(first / "model.pt", "from 1")
    write(first / "only1.txt", "1")
    write(first / "shadowed", "a file, then a dir in algo-2")
    write(second / "model.pt", "from 2")
    write(second / "sub" / "deep.txt", "2")
    write(second / "shadowed" / "inner.txt", "dir wins")
    (second / "empty").mkdir()
    (second / "link").symlink_to("/etc/passwd")
    (second / "dirlink").symlink_to(first)
    tarball = tmp_path / "model.tar.gz"

    pack_dirs(tarball, [first, second])

    assert [m.name for m in members(tarball)] == [
        "model.pt",
        "only1.txt",
        "shadowed/inner.txt",
        "sub/deep.txt",
    ]
    out = tmp_path / "out"
    assert extract(tarball, out) == ["model.pt", "only1.txt", "shadowed/inner.txt", "sub/deep.txt"]
    assert tree(out) == {
        "model.pt": "from 2",
        "only1.txt": "1",
        "shadowed": "<dir>",
        "shadowed/inner.txt": "dir wins",
        "sub": "<dir>",
        "sub/deep.txt": "2",
    }


def test_pack_dirs_later_file_hides_earlier_dir(tmp_path: Path) -> None:
    write(tmp_path / "a" / "x" / "y.txt", "in a dir")
    write(tmp_path / "b" / "x", "a file")
    pack_dirs(tmp_path / "m.tar.gz", [tmp_path / "a", tmp_path / "b"])
    assert [m.name for m in members(tmp_path / "m.tar.gz")] == ["x"]


def test_pack_dirs_of_nothing_is_a_valid_empty_tarball(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    pack_dirs(tmp_path / "none.tar.gz", [])
    pack_dirs(tmp_path / "empty.tar.gz", [tmp_path / "empty"])
    assert members(tmp_path / "none.tar.gz") == members(tmp_path / "empty.tar.gz") == []
    assert extract(tmp_path / "empty.tar.gz", tmp_path / "out") == []
    assert tree(tmp_path / "out") == {}


# extract


def test_round_trip_keeps_content_and_executable_bit(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "train.py", "print('train')\n", mode=0o755)
    write(src / "lib" / "util.py", "U = 1\n")
    tarball = tmp_path / "code.tar.gz"
    pack_code(tarball, [("train.py", src / "train.py"), ("lib/util.py", src / "lib" / "util.py")])

    out = tmp_path / "out"
    assert extract(tarball, out) == ["lib/util.py", "train.py"]

    assert tree(out) == {"lib": "<dir>", "lib/util.py": "U = 1\n", "train.py": "print('train')\n"}
    assert os.access(out / "train.py", os.X_OK)
    assert not os.access(out / "lib" / "util.py", os.X_OK)


def test_extract_replaces_an_existing_dest(tmp_path: Path) -> None:
    tarball = build(tmp_path / "m.tar.gz", entry("new.txt", b"new"))
    dest = tmp_path / "dest"
    write(dest / "old.txt", "old")

    extract(tarball, dest)

    assert tree(dest) == {"new.txt": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "m.tar.gz"]


def test_extract_allows_safe_links_and_dot_entries(tmp_path: Path) -> None:
    def fill(tar: tarfile.TarFile) -> None:
        add(tar, ".", kind=tarfile.DIRTYPE)
        add(tar, "./data/a.txt", b"a")
        add(tar, "data/link", kind=tarfile.SYMTYPE, linkname="a.txt")
        add(tar, "up", kind=tarfile.SYMTYPE, linkname="data/../data/a.txt")
        add(tar, "hard", kind=tarfile.LNKTYPE, linkname="./data/a.txt")

    out = tmp_path / "out"
    assert extract(build(tmp_path / "ok.tar.gz", fill), out) == [
        "data/a.txt",
        "data/link",
        "hard",
        "up",
    ]
    assert (out / "data" / "link").read_text() == "a"
    assert (out / "up").read_text() == "a"
    assert (out / "hard").read_text() == "a"


def _absurd_size(tar: tarfile.TarFile) -> None:
    # A header claiming a terabyte, followed by no data at all.
    info = tarfile.TarInfo("huge.bin")
    info.size = 10**12
    assert tar.fileobj is not None
    tar.fileobj.write(info.tobuf(tarfile.PAX_FORMAT))


HOSTILE: list[tuple[str, list[Fill], str, str, dict[str, int]]] = [
    ("absolute", [entry("/tmp/evil", b"x")], "/tmp/evil", "absolute path", {}),
    ("dotdot", [entry("../evil", b"x")], "../evil", "outside the destination", {}),
    (
        "dotdot-deep",
        [entry("a/../../evil", b"x")],
        "a/../../evil",
        "outside the destination",
        {},
    ),
    (
        "symlink-absolute",
        [entry("passwd", kind=tarfile.SYMTYPE, linkname="/etc/passwd")],
        "passwd",
        "absolute path",
        {},
    ),
    (
        "symlink-outside",
        [entry("sub/out", kind=tarfile.SYMTYPE, linkname="../../outside")],
        "sub/out",
        "symlink pointing outside the destination",
        {},
    ),
    (
        "write-through-symlink",
        [entry("link", kind=tarfile.SYMTYPE, linkname="."), entry("link/../outside", b"x")],
        "link/../outside",
        "through the symlink member 'link'",
        {},
    ),
    (
        "hardlink-outside",
        [entry("hard", kind=tarfile.LNKTYPE, linkname="../outside")],
        "hard",
        "hardlink pointing outside the destination",
        {},
    ),
    (
        "hardlink-absolute",
        [entry("hard", kind=tarfile.LNKTYPE, linkname="/etc/passwd")],
        "hard",
        "absolute path",
        {},
    ),
    (
        "chardev",
        [entry("null", kind=tarfile.CHRTYPE)],
        "null",
        "character device",
        {},
    ),
    ("fifo", [entry("pipe", kind=tarfile.FIFOTYPE)], "pipe", "fifo", {}),
    ("absurd-size", [_absurd_size], "huge.bin", "over the limit", {}),
    (
        "too-big",
        [entry("a", b"x" * 600), entry("b", b"x" * 600)],
        "b",
        "over the limit of 1000",
        {"max_total_bytes": 1000},
    ),
    (
        "too-many",
        [entry(f"f{i}") for i in range(5)],
        "f3",
        "limit of 3 members",
        {"max_members": 3},
    ),
    (
        "file-and-dir",
        [entry("x", b"file"), entry("x/y", b"inside")],
        "x",
        "other members would be inside it",
        {},
    ),
]


@pytest.mark.parametrize("merge", [False, True], ids=["extract", "extract_into"])
@pytest.mark.parametrize(
    ("fills", "member", "rule", "limits"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_archive_is_refused_and_nothing_is_written(
    tmp_path: Path,
    fills: list[Fill],
    member: str,
    rule: str,
    limits: dict[str, int],
    merge: bool,
) -> None:
    tarball = build(tmp_path / "model.tar.gz", *fills)
    dest = tmp_path / "work" / "dest"
    write(dest / "keep.txt", "original")
    before = tree(tmp_path)

    with pytest.raises(ArchiveError) as caught:
        (extract_into if merge else extract)(tarball, dest, **limits)

    message = str(caught.value)
    assert message.startswith(f"refusing to extract {tarball}: member '{member}' ")
    assert rule in message
    assert tree(tmp_path) == before


def test_symlink_member_may_not_be_a_parent_of_another(tmp_path: Path) -> None:
    def fill(tar: tarfile.TarFile) -> None:
        add(tar, "sub/file", b"x")
        add(tar, "sub", kind=tarfile.SYMTYPE, linkname="elsewhere")

    with pytest.raises(ArchiveError, match=r"member 'sub/file' .* symlink member 'sub'"):
        extract(build(tmp_path / "m.tar.gz", fill), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_hardlink_must_target_an_earlier_file(tmp_path: Path) -> None:
    def fill(tar: tarfile.TarFile) -> None:
        add(tar, "hard", kind=tarfile.LNKTYPE, linkname="later")
        add(tar, "later", b"x")

    with pytest.raises(ArchiveError, match="member 'hard' is a hardlink to 'later'"):
        extract(build(tmp_path / "m.tar.gz", fill), tmp_path / "out")


def test_truncated_gzip_is_corrupt_and_dest_untouched(tmp_path: Path) -> None:
    source = write(tmp_path / "big.txt", "".join(f"line {i}\n" for i in range(20_000)))
    whole = tmp_path / "whole.tar.gz"
    pack_code(whole, [("big.txt", source)])
    data = whole.read_bytes()
    dest = tmp_path / "dest"
    write(dest / "keep.txt", "original")

    for name, broken in [
        ("half.tar.gz", data[: len(data) // 2]),
        ("no-trailer.tar.gz", data[:-4]),
        ("bad-crc.tar.gz", data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]),
        ("not-gzip.tar.gz", b"this is not a tarball"),
        ("empty.tar.gz", b""),
    ]:
        bad = tmp_path / name
        bad.write_bytes(broken)
        with pytest.raises(ArchiveError, match=re.escape(f"{bad} is corrupt or truncated: ")):
            extract(bad, dest)
        bad.unlink()

    after = tree(tmp_path)
    assert sorted(after) == ["big.txt", "dest", "dest/keep.txt", "whole.tar.gz"]
    assert after["dest/keep.txt"] == "original"


def test_missing_archive_is_an_archive_error(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="cannot read"):
        extract(tmp_path / "missing.tar.gz", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# extract_into


def test_extract_into_merges(tmp_path: Path) -> None:
    def fill(tar: tarfile.TarFile) -> None:
        add(tar, "ckpt/step2.pt", b"2")
        add(tar, "ckpt/latest", kind=tarfile.SYMTYPE, linkname="step2.pt")
        add(tar, "shared.txt", b"new")

    dest = tmp_path / "state"
    write(dest / "ckpt" / "step1.pt", "1")
    write(dest / "shared.txt", "old")
    (dest / "ckpt" / "latest").symlink_to("step1.pt")

    names = extract_into(build(tmp_path / "state.tar.gz", fill), dest)

    assert names == ["ckpt/latest", "ckpt/step2.pt", "shared.txt"]
    assert tree(dest) == {
        "ckpt": "<dir>",
        "ckpt/step1.pt": "1",
        "ckpt/step2.pt": "2",
        "ckpt/latest": "-> step2.pt",
        "shared.txt": "new",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state", "state.tar.gz"]


def test_extract_into_creates_a_missing_dest(tmp_path: Path) -> None:
    tarball = build(tmp_path / "s.tar.gz", entry("a/b.txt", b"b"))
    assert extract_into(tarball, tmp_path / "new" / "state") == ["a/b.txt"]
    assert tree(tmp_path / "new") == {"state": "<dir>", "state/a": "<dir>", "state/a/b.txt": "b"}


def test_extract_into_refuses_to_write_through_an_existing_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "state"
    dest.mkdir()
    (dest / "ckpt").symlink_to(outside)
    tarball = build(
        tmp_path / "s.tar.gz",
        entry("first.txt", b"1"),
        entry("ckpt/evil", b"x"),
    )
    before = tree(tmp_path)

    with pytest.raises(
        ArchiveError, match=re.escape(f"member 'ckpt/evil' would be written through {dest}")
    ):
        extract_into(tarball, dest)

    assert tree(tmp_path) == before


def test_extract_into_replaces_an_existing_symlink_instead_of_following_it(
    tmp_path: Path,
) -> None:
    outside = write(tmp_path / "outside.txt", "untouched")
    dest = tmp_path / "state"
    dest.mkdir()
    (dest / "shared.txt").symlink_to(outside)
    tarball = build(tmp_path / "s.tar.gz", entry("shared.txt", b"new"))

    extract_into(tarball, dest)

    assert outside.read_text() == "untouched"
    assert tree(dest) == {"shared.txt": "new"}


def test_extract_into_refuses_to_replace_a_directory_with_a_file(tmp_path: Path) -> None:
    dest = tmp_path / "state"
    write(dest / "ckpt" / "a.pt", "a")
    tarball = build(tmp_path / "s.tar.gz", entry("ckpt", b"file"))
    with pytest.raises(ArchiveError, match="member 'ckpt' would replace the directory"):
        extract_into(tarball, dest)
    assert tree(dest) == {"ckpt": "<dir>", "ckpt/a.pt": "a"}


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
