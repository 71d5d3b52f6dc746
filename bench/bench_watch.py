"""Save-to-launch latency of `ssmake watch`: from a file write to the job's process start.

    python bench/bench_watch.py [--saves N] [--debounce MS]

Runs a Watcher in this process on a one-task project in a temporary directory,
on the local backend, at the default debounce. Each save rewrites the task's
entry point with new content (a new fingerprint, so a new job); the worker's
first statement records time.time(). The latency is that time minus the moment
the write returned; the baseline is the debounce itself, the time the watcher
waits on purpose for a burst to end. Also printed: where the time goes (until
the build starts, until the backend launched the job, until the process ran its
first line) and, for scale, a bare `python -c pass`.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ssmake.build.watch import Watcher  # noqa: E402
from ssmake.events import Event, JobLaunched  # noqa: E402
from ssmake.ui.report import PlainWatchView  # noqa: E402

SSMFILE = """
[project]
name = "bench"

[tasks.train]
source_dir = "code"
entry_point = "train.py"
"""

WORKER = """import time; STARTED = time.time()
import os
# save {n}
with open(os.environ["BENCH_STARTED"], "w") as f:
    f.write(repr(STARTED))
"""


class LaunchClock(PlainWatchView):
    """Quiet output; remembers when the backend reported each launch."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.launched: list[float] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, JobLaunched):
            self.launched.append(time.time())
        super().__call__(event)


def built_after(watcher: Watcher, count: int) -> Callable[[], bool]:
    return lambda: len(watcher.builds) > count and watcher.idle


def python_startup(runs: int = 10) -> float:
    """Median seconds of a bare `python -c pass`."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def measure(saves: int, debounce: float) -> dict[str, list[float]]:
    phases: dict[str, list[float]] = {
        "write -> build starts": [],
        "build starts -> job launched": [],
        "job launched -> process runs": [],
        "write -> process runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        root = Path(tmp) / "project"
        (root / "code").mkdir(parents=True)
        (root / "Ssmfile.toml").write_text(SSMFILE)
        entry = root / "code" / "train.py"
        entry.write_text(WORKER.format(n=0))
        started_file = Path(tmp) / "started"
        os.environ["BENCH_STARTED"] = str(started_file)
        clock = LaunchClock()
        watcher = Watcher(root, debounce=debounce, view=clock)
        watcher.start()
        try:
            if not watcher.wait_until(built_after(watcher, 0), 60):
                raise SystemExit("the first build did not finish within 60 s")
            for n in range(1, saves + 1):
                started_file.unlink(missing_ok=True)
                before = len(watcher.builds)
                entry.write_text(WORKER.format(n=n))
                written = time.time()
                if not watcher.wait_until(built_after(watcher, before), 30):
                    raise SystemExit(f"save {n}: no build within 30 s")
                ran = float(started_file.read_text())
                build = watcher.builds[-1]
                launched = clock.launched[-1]
                phases["write -> build starts"].append(build.started - written)
                phases["build starts -> job launched"].append(launched - build.started)
                phases["job launched -> process runs"].append(ran - launched)
                phases["write -> process runs"].append(ran - written)
        finally:
            watcher.stop()
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=20, help="saves to time (default 20)")
    parser.add_argument(
        "--debounce", type=int, default=100, metavar="MS", help="the watch debounce (default 100)"
    )
    args = parser.parse_args()
    if args.saves < 2:
        parser.error("--saves must be at least 2")
    debounce = args.debounce / 1000
    phases = measure(args.saves, debounce)
    startup = python_startup()
    print(f"ssmake watch, save-to-launch latency: {args.saves} saves, debounce {args.debounce} ms")
    print(f"{'':32}{'median':>10}{'p90':>10}")
    for name, values in phases.items():
        print(f"{name:32}{statistics.median(values) * 1000:>8.1f}ms{p90(values) * 1000:>8.1f}ms")
    total = phases["write -> process runs"]
    median, high = statistics.median(total), p90(total)
    print(f"baseline: the debounce, {args.debounce} ms")
    if debounce > 0:
        print(f"ratio to the debounce: {median / debounce:.2f}x median, {high / debounce:.2f}x p90")
    print(f"for scale: python -c pass takes {startup * 1000:.1f} ms here")


if __name__ == "__main__":
    main()
