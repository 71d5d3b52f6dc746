"""Timing helpers shared by the benchmarks: wall-clock medians of whole commands."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def time_command(cmd: Sequence[str], *, cwd: Path | None = None, runs: int = 10) -> list[float]:
    """Wall-clock seconds of each of `runs` runs of `cmd` (after one warm-up run)."""
    subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return times


def median_ms(times: Sequence[float]) -> float:
    return statistics.median(times) * 1000


def report(rows: Sequence[tuple[str, float]], baseline: str) -> None:
    """Print a table of medians (ms) and each row's ratio to the baseline row."""
    base = dict(rows)[baseline]
    width = max(len(name) for name, _ in rows)
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:9.1f} ms  {ms / base:6.2f}x {baseline}")
