"""`ssmake --help` against a bare `python -c pass`, measured in the same run.

Target: under 150 ms and at most 3x the bare interpreter.
Run: python bench/bench_help.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import sys

from timing import median_ms, report, time_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    ssmake = shutil.which("ssmake") or sys.exit("ssmake is not installed (pip install -e .)")
    rows = [
        ("python -c pass", median_ms(time_command([sys.executable, "-c", "pass"], runs=args.runs))),
        ("ssmake --help", median_ms(time_command([ssmake, "--help"], runs=args.runs))),
        (
            "ssm --help",
            median_ms(time_command([shutil.which("ssm") or "ssm", "--help"], runs=args.runs)),
        ),
    ]
    report(rows, "python -c pass")


if __name__ == "__main__":
    main()
