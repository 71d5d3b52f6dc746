"""Per-task overhead of ssmake on a trivial local project: a chain of 10 tasks, each
taking the previous one's model as input, built with -B, minus the time of running
the 10 scripts directly, divided by 10. Alternated in the same run.

Target: under 25 ms per task.
Run: python bench/bench_overhead.py [--tasks N] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from timing import installed, load, run_once

SCRIPT = (
    "import os\nfrom worker_toolkit import worker_lib\nargs = worker_lib.parseArgs()\n"
    "open(os.path.join(os.environ.get('SM_MODEL_DIR', '.'), 'm'), 'w').write('m')\n"
)


def ssmfile(tasks: int) -> str:
    lines = ['[project]\nname = "overhead"\n']
    for i in range(tasks):
        lines.append(f'[tasks.t{i}]\nentry_point = "t{i}.py"')
        if i:
            lines.append(f'inputs.prev = {{ task = "t{i - 1}", output = "model" }}')
        lines.append("")
    return "\n".join(lines)


def creation_us(where: Path, count: int = 200) -> float:
    """Microseconds to create a directory and a file in it on this disk, the median
    of `count`: a job's run makes some 35 of each, so a disk whose inode
    allocation is slow (10x between two hours of the same machine) moves the
    overhead while leaving the scripts' baseline alone."""
    times = []
    for i in range(count):
        start = time.perf_counter()
        (where / f"d{i}").mkdir()
        (where / f"d{i}" / "f").write_bytes(b"x")
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6 / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    ssmake = installed("ssmake")
    print(load())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.tasks):
            (root / f"t{i}.py").write_text(SCRIPT)
        (root / "Ssmfile.toml").write_text(ssmfile(args.tasks))
        chain = " && ".join(f"{sys.executable} t{i}.py" for i in range(args.tasks))
        direct_cmd = ["sh", "-c", chain]
        if run_once([ssmake, "-q"], root)[1] != 0:
            sys.exit("the first build failed")
        direct, built, noop = [], [], []
        for _ in range(args.runs):
            direct.append(run_once(direct_cmd, root)[0])
            seconds, code = run_once([ssmake, "-B", "-q"], root)
            if code != 0:
                sys.exit("a build failed")
            built.append(seconds)
            noop.append(run_once([ssmake, "-q"], root)[0])
        probe = root / "probe"
        probe.mkdir()
        creating = creation_us(probe)
    d, b, n = (statistics.median(x) * 1000 for x in (direct, built, noop))
    print(f"{args.tasks} scripts run directly  {d:8.1f} ms")
    per_task = (b - d) / args.tasks
    print(f"ssmake -B (every job runs)  {b:8.1f} ms   overhead {per_task:6.1f} ms per task")
    print(f"ssmake (up to date)         {n:8.1f} ms")
    print(f"creating a file or directory on this disk: {creating:.0f} us (after the runs)")


if __name__ == "__main__":
    main()
