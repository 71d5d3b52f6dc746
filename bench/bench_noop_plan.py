"""No-op plan: `ssmake --check` on generated, committed, up-to-date projects against
`git status --porcelain` over the same tree, alternated in the same run.

Targets (docs/benchmarks.md): 20 x 2,500 and 20 x 5,000 files at most 2x git status;
20 x 1,000 and 1,000 tasks x 10 files at most 3x; with `ssmake watch` running, at
most 1.5x at every size (--watch); peak RSS at 100k files under 40 MiB.
Run: python bench/bench_noop_plan.py [--layouts 20x1000,20x2500,...] [--runs N] [--watch]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import alternate, installed, load, report

DEFAULT_LAYOUTS = "20x1000,20x2500,20x5000,1000x10"


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
    (root / ".gitignore").write_text(".ssmake/\n")
    # Old mtimes, as in a checkout that has not just been written.
    for path in root.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000))
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=root, check=True)


def prepare(root: Path, ssmake: str) -> None:
    built = subprocess.run([ssmake, "-q", "-j", "2"], cwd=root, capture_output=True)
    if built.returncode != 0:
        sys.exit(built.stderr.decode())
    # Past the racy window, so that the first check may record the stat digests.
    time.sleep(2.1)
    check = subprocess.run([ssmake, "--check"], cwd=root, capture_output=True)
    if check.returncode != 0:
        sys.exit(f"expected an up-to-date project: {check.stderr.decode()}")


def start_watcher(root: Path, ssmake: str) -> subprocess.Popen[bytes]:
    watcher = subprocess.Popen(
        [ssmake, "watch", "-q"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    socket_path = root / ".ssmake" / "watch.sock"
    deadline = time.monotonic() + 60
    while not socket_path.exists():
        if time.monotonic() > deadline or watcher.poll() is not None:
            watcher.kill()
            sys.exit("ssmake watch did not open its socket within 60 s")
        time.sleep(0.1)
    # Its first build (nothing to run) must settle before it answers "up-to-date": at
    # 1,000 tasks on a busy machine that takes seconds, and until then every --check
    # falls back to the normal plan, which is not what this row measures.
    while watcher_says(socket_path) != b"up-to-date\n":
        if time.monotonic() > deadline or watcher.poll() is not None:
            watcher.kill()
            sys.exit("ssmake watch did not answer up-to-date within 60 s")
        time.sleep(0.2)
    return watcher


def watcher_says(socket_path: Path) -> bytes:
    """The watcher's answer to a `check`, as `ssmake --check` asks it."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(socket_path))
            sock.sendall(b"check\n")
            return sock.recv(64)
    except OSError:
        return b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layouts", default=DEFAULT_LAYOUTS, help="TASKSxFILES,...")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--watch", action="store_true", help="also time --check with `ssmake watch` running"
    )
    args = parser.parse_args()
    ssmake = installed("ssmake")
    print(load())
    for layout in args.layouts.split(","):
        tasks, files = (int(n) for n in layout.split("x"))
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
            root = Path(tmp)
            generate(root, tasks, files)
            prepare(root, ssmake)
            commands = {
                "git status --porcelain": ["git", "status", "--porcelain"],
                "ssmake --check": [ssmake, "--check"],
            }
            print(f"\n{tasks} tasks x {files} files ({tasks * (files + 1)} files)")
            report(
                alternate(commands, cwd=root, runs=args.runs), "git status --porcelain", rss=True
            )
            if args.watch:
                watcher = start_watcher(root, ssmake)
                try:
                    results = alternate(commands, cwd=root, runs=args.runs)
                finally:
                    watcher.terminate()
                    watcher.wait(30)
                print("  with ssmake watch running:")
                report(results, "git status --porcelain", rss=True)
    print(load())


if __name__ == "__main__":
    main()
