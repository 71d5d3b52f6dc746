"""The hash cache's file: what is saved is what is read back, and nothing else is."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from ssmake.plan.hashcache import HashCache, HashTable

SHA = hashlib.sha256(b"x").hexdigest()


def test_entries_survive_a_save_whatever_their_path_or_stat(tmp_path: Path) -> None:
    table = HashTable()
    odd = os.fsdecode(b"/data/caf\xe9.bin")  # not UTF-8: kept as surrogates
    keys = {
        "/p/a.py": (12, 3, 1_700_000_000_000_000_000, 1_700_000_000_000_000_001),
        odd: (2**64 - 5, 2**63 + 1, -1_000, 0),  # XFS-sized inode, pre-1970 mtime
        "/p/space and ünïcode": (1, 0, 5, 6),
    }
    for path, key in keys.items():
        table.put(path, key, SHA)
    table.put("/p/a.py", keys["/p/a.py"], "0" * 64)  # replaced in place
    cache = tmp_path / "hashes.bin"
    cache.write_bytes(table.to_bytes())

    read = HashTable.read(cache)

    assert read.paths == list(keys)
    assert read.get("/p/a.py", keys["/p/a.py"]) == "0" * 64
    assert read.get(odd, keys[odd]) == SHA
    assert read.get(odd, (2**64 - 5, 2**63 + 1, -1_000, 1)) is None  # ctime moved
    assert read.get("/p/missing", (1, 0, 5, 6)) is None
    assert HashTable.read(tmp_path / "absent").paths == []
    empty = tmp_path / "empty.bin"
    empty.write_bytes(HashTable().to_bytes())
    assert HashTable.read(empty).paths == []


def test_a_settled_file_is_hashed_once_across_processes(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x" * i)
        files.append(path)
    time.sleep(2.1)  # out of the racy window, mtime and ctime alike
    first = HashCache(tmp_path / "cache" / "hashes.bin")
    digests = first.hash_files([(str(p), p.stat()) for p in files])
    first.save()

    again = HashCache(tmp_path / "cache" / "hashes.bin")

    assert again.hash_files([(str(p), p.stat()) for p in files]) == digests
    assert again.hashed_files == 0
    assert digests == [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
