"""No-op plan: `ssmake --check` on a generated project of 20 tasks over 20,000 files,
warm hash cache, against `git status` over the same tree, in the same run.

Target: under 1 s and within 2x of git status.
Run: python bench/bench_noop_plan.py [--tasks N] [--files-per-task N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import median_ms, report, time_command


def generate(root: Path, tasks: int, files: int) -> None:
    lines = ['[project]\nname = "bench"\n']
    for t in range(tasks):
        code = root / f"task{t}"
        for f in range(files):
            sub = code / f"pkg{f % 10}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"mod{f}.py").write_text(f"VALUE = {t * files + f}\n")
        (code / "main.py").write_text("print('hi')\n")
        lines.append(f'[tasks.t{t}]\nsource_dir = "task{t}"\nentry_point = "main.py"\n')
    (root / "Ssmfile.toml").write_text("\n".join(lines))
    # Old mtimes, as in a checkout that has not just been written.
    for path in root.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--files-per-task", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    ssmake = shutil.which("ssmake") or sys.exit("ssmake is not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, args.tasks, args.files_per_task)
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"],
            cwd=root,
            check=True,
        )
        (root / ".gitignore").write_text(".ssmake/\n")
        built = subprocess.run([ssmake, "-q", "-j", "2"], cwd=root, capture_output=True)
        if built.returncode != 0:
            sys.exit(built.stderr.decode())
        check = subprocess.run([ssmake, "--check"], cwd=root, capture_output=True)
        if check.returncode != 0:
            sys.exit(f"expected an up-to-date project: {check.stderr.decode()}")
        n_files = sum(1 for p in root.rglob("*.py") if ".ssmake" not in p.parts)
        print(f"{args.tasks} tasks, {n_files} files")
        rows = [
            (
                "git status",
                median_ms(time_command(["git", "status", "--porcelain"], cwd=root, runs=args.runs)),
            ),
            (
                "ssmake --check",
                median_ms(time_command([ssmake, "--check"], cwd=root, runs=args.runs)),
            ),
        ]
        report(rows, "git status")


if __name__ == "__main__":
    main()
