"""Timing helpers shared by the benchmarks: alternated runs of whole commands, medians."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Runs:
    """Wall-clock seconds of each run of one command, and its peak RSS (MiB)."""

    seconds: list[float] = field(default_factory=list)
    peak_mib: float | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000


def run_once(cmd: Sequence[str], cwd: Path | None = None) -> tuple[float, int]:
    """(seconds, exit code) of one run, output discarded."""
    start = time.perf_counter()
    code = subprocess.call(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, code


def peak_rss_mib(cmd: Sequence[str], cwd: Path | None = None) -> float | None:
    """The peak RSS of one run, measured by GNU time (a child's own rusage would
    count the pages of the benchmark process it was forked from); None without it."""
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    if gnu_time is None:
        return None
    done = subprocess.run(
        [gnu_time, "-f", "%M", *cmd],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    return int(lines[-1]) / 1024 if lines and lines[-1].isdigit() else None


def alternate(
    commands: Mapping[str, Sequence[str]], *, cwd: Path | None = None, runs: int = 10
) -> dict[str, Runs]:
    """Run the commands in turn, `runs` rounds after one warm-up round, so that a burst
    of load on a shared machine hits them alike."""
    results = {name: Runs() for name in commands}
    for round_ in range(runs + 1):
        for name, cmd in commands.items():
            seconds, _code = run_once(cmd, cwd)
            if round_:
                results[name].seconds.append(seconds)
    for name, cmd in commands.items():
        results[name].peak_mib = peak_rss_mib(cmd, cwd)
    return results


def report(results: Mapping[str, Runs], baseline: str, *, rss: bool = False) -> None:
    """Print each command's median (ms) and its ratio to the baseline's."""
    base = results[baseline].median_ms
    width = max(len(name) for name in results)
    for name, r in results.items():
        extra = f"  peak RSS {r.peak_mib:5.1f} MiB" if rss and r.peak_mib is not None else ""
        print(
            f"{name:<{width}}  {r.median_ms:9.1f} ms  {r.median_ms / base:6.2f}x {baseline}{extra}"
        )


def load() -> str:
    """The machine's load, to print beside the figures (they are only comparable in one run)."""
    one, five, _ = os.getloadavg()
    said = f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"
    # I/O stalls (another process's writeback, a shared disk) slow every file a job's
    # run creates while leaving a CPU-bound baseline alone: say so when Linux tells.
    try:
        with open("/proc/pressure/io") as f:
            some = f.readline().split()
        stalled = dict(field.split("=") for field in some[1:])
        said += f"; I/O stalled {stalled['avg10']}% (10 s), {stalled['avg60']}% (60 s)"
    except (OSError, ValueError, KeyError, IndexError):
        pass
    return said


def installed(name: str) -> str:
    """The path of an installed console script; exits with a hint when missing."""
    path = shutil.which(name)
    if path is None:
        sys.exit(f"{name} is not installed: pip install . (a non-editable install)")
    return path
