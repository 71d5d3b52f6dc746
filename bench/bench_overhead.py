"""Overhead of `ssmake` on a trivial one-task project: its wall time minus the time of
running the same script directly, in the same run.

Target: under 0.5 s of overhead.
Run: python bench/bench_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = "from worker_toolkit import worker_lib\nargs = worker_lib.parseArgs()\nprint('hi')\n"
SSMFILE = '[tasks.hello]\nentry_point = "hello.py"\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    ssmake = shutil.which("ssmake") or sys.exit("ssmake is not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "hello.py").write_text(SCRIPT)
        (root / "Ssmfile.toml").write_text(SSMFILE)
        direct, built, noop = [], [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "hello.py"], cwd=root, capture_output=True, check=True)
            direct.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run([ssmake, "-B", "-q"], cwd=root, capture_output=True, check=True)
            built.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run([ssmake, "-q"], cwd=root, capture_output=True, check=True)
            noop.append(time.perf_counter() - start)
    d, b, n = (statistics.median(x) * 1000 for x in (direct, built, noop))
    print(f"script run directly     {d:8.1f} ms")
    print(f"ssmake (job runs)       {b:8.1f} ms   overhead {b - d:7.1f} ms")
    print(f"ssmake (up to date)     {n:8.1f} ms")


if __name__ == "__main__":
    main()
