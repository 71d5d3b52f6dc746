"""Cold hashing: ssmake's file hasher against `sha256sum` over the same files, alternated
in the same run (page cache warm for both, so this measures hashing, not the disk).
"Cold" means an empty hash cache: every file is read and hashed.

Two trees: many small files (default 50,000 of 4 KiB; target: faster than
sha256sum) and a few large ones (default 1 GiB in 64 files; target: at least 4x).
Run: python bench/bench_hash.py [--small-files N] [--small-kib N] [--gib N] [--files N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from timing import load

from ssmake.plan.hashcache import HashCache


def small_tree(root: Path, count: int, size: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = root / f"d{i % 100:02d}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def large_tree(root: Path, count: int, total: int) -> list[Path]:
    block = os.urandom(1 << 20)
    paths = []
    for i in range(count):
        path = root / f"part{i:04d}.bin"
        with path.open("wb") as f:
            for _ in range(total // count // len(block)):
                f.write(block)
        paths.append(path)
    return paths


def sha256sum(listing: Path) -> float:
    start = time.perf_counter()
    with listing.open("rb") as names:
        subprocess.run(
            ["xargs", "-0", "sha256sum"], stdin=names, stdout=subprocess.DEVNULL, check=True
        )
    return time.perf_counter() - start


def ssmake_hasher(paths: list[Path]) -> float:
    # The stats come from the walk a plan does anyway (and times in bench_noop_plan).
    files = [(str(p), os.stat(p)) for p in paths]
    start = time.perf_counter()
    HashCache(None).hash_files(files)
    return time.perf_counter() - start


def compare(name: str, paths: list[Path], listing: Path, runs: int) -> None:
    listing.write_bytes(b"\0".join(str(p).encode() for p in paths))
    # One round each first: the page cache is warm for both contenders.
    sha256sum(listing)
    ssmake_hasher(paths)
    theirs, ours = [], []
    for _ in range(runs):
        theirs.append(sha256sum(listing))
        ours.append(ssmake_hasher(paths))
    mib = sum(p.stat().st_size for p in paths) / 2**20
    t, o = statistics.median(theirs), statistics.median(ours)
    print(f"{name}: {len(paths)} files, {mib:.0f} MiB, medians of {runs} alternated runs")
    print(f"  sha256sum (xargs)  {t * 1000:8.1f} ms  {mib / t:7.0f} MiB/s")
    print(f"  ssmake hasher      {o * 1000:8.1f} ms  {mib / o:7.0f} MiB/s  {t / o:5.2f}x sha256sum")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small-files", type=int, default=50_000)
    parser.add_argument("--small-kib", type=int, default=4)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(load())
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp) / "small"
        paths = small_tree(root, args.small_files, args.small_kib << 10)
        compare(f"small files ({args.small_kib} KiB)", paths, Path(tmp) / "listing", args.runs)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        paths = large_tree(Path(tmp), args.files, int(args.gib * 2**30))
        compare("large files", paths, Path(tmp) / "listing", args.runs)
    print(load())


if __name__ == "__main__":
    main()
