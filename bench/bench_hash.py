"""Cold hashing throughput: ssmake's file hasher against `sha256sum` over the same files,
in the same run (page cache warm for both, so this measures hashing, not the disk).

Target: at least 0.8x sha256sum's throughput.
Run: python bench/bench_hash.py [--gib 2] [--files 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from ssmake.plan.hashcache import HashCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--files", type=int, default=64)
    args = parser.parse_args()
    total = int(args.gib * 2**30)
    per_file = total // args.files
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        block = os.urandom(1 << 20)
        paths = []
        for i in range(args.files):
            path = root / f"part{i:04d}.bin"
            with path.open("wb") as f:
                for _ in range(per_file // len(block)):
                    f.write(block)
            paths.append(path)
        size = sum(p.stat().st_size for p in paths)
        # Warm the page cache for both contenders.
        subprocess.run(["cat", *map(str, paths)], stdout=subprocess.DEVNULL, check=True)

        start = time.perf_counter()
        subprocess.run(["sha256sum", *map(str, paths)], stdout=subprocess.DEVNULL, check=True)
        sha_s = time.perf_counter() - start

        cache = HashCache(None)
        start = time.perf_counter()
        cache.hash_files([(p, p.stat()) for p in paths])
        ours_s = time.perf_counter() - start

        mib = size / 2**20
        print(f"{mib:.0f} MiB in {args.files} files")
        print(f"sha256sum      {mib / sha_s:8.0f} MiB/s")
        print(f"ssmake hasher  {mib / ours_s:8.0f} MiB/s   {sha_s / ours_s:5.2f}x sha256sum")


if __name__ == "__main__":
    main()
