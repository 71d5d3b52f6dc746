"""`ssmake --help` and `ssm --help` against a bare `python -c pass`, alternated in the
same run. Measure a non-editable install (`pip install .`): an editable one adds
its import hook to every start-up.

Target: each at most 3x the bare interpreter.
Run: python bench/bench_help.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys

from timing import alternate, installed, load, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "ssmake --help": [installed("ssmake"), "--help"],
        "ssm --help": [installed("ssm"), "--help"],
    }
    print(load())
    report(alternate(commands, runs=args.runs), "python -c pass")


if __name__ == "__main__":
    main()
