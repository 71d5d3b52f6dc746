"""What an unchanged Dockerfile image costs a plan: the same project planned with and
without `dockerfile`, warm hash cache, in one process (so interpreter start-up does
not drown the difference). Docker is the recording fake: any build, tag or push
the plan made would be counted.

Also timed: resolving the image of a task whose image exists (what a rerun of the
task's job does first): the content tag is computed, nothing is built or pushed.

Target: the dockerfile adds under 50 ms to the plan, with 0 docker calls.
Run: python bench/bench_image_plan.py [--context-files N] [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from ssmake.build.session import open_session
from ssmake.cli import main as ssmake
from ssmake.images import resolve as images
from ssmake.project.load import load_project

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from recording_builder import RecordingBuilder

SSMFILE = """
[project]
name = "bench"

[tasks.train]
source_dir = "code"
entry_point = "train.py"
"""


def generate(root: Path, code_files: int, context_files: int, dockerfile: bool) -> None:
    code = root / "code"
    for i in range(code_files):
        path = code / f"pkg{i % 10}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE = {i}\n")
    (code / "train.py").write_text("print('trained')\n")
    docker = root / "docker"
    for i in range(context_files):
        path = docker / f"assets{i % 10}" / f"file{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"asset {i}\n" * 20)
    (docker / "Dockerfile").write_text("FROM __BASE_IMAGE__\nCOPY assets0 /opt/assets0\n")
    # Ignored by docker: never walked, never hashed.
    for i in range(context_files):
        path = docker / "scratch" / f"tmp{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1024)
    (docker / ".dockerignore").write_text("scratch\n")
    extra = 'dockerfile = "docker"\nimage = { uri = "base:1" }\n' if dockerfile else ""
    (root / "Ssmfile.toml").write_text(SSMFILE + extra)
    for path in root.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000))


def run_quietly(*args: str) -> int:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return ssmake(list(args))


def median_ms(call: Callable[[], object], runs: int) -> float:
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code-files", type=int, default=500)
    parser.add_argument("--context-files", type=int, default=500)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    builder = RecordingBuilder(images={"base:1": "base"})
    images.BUILDERS["docker"] = lambda: builder
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant, dockerfile in (("without", False), ("with", True)):
            root = Path(tmp) / variant
            generate(root, args.code_files, args.context_files, dockerfile)
            if run_quietly("-C", str(root), "-q") != 0:
                sys.exit(f"the first build of {root} failed")
            if run_quietly("--check", "-C", str(root)) != 0:
                sys.exit(f"expected {root} to be up to date")
            rows[variant] = {
                "plan (ssmake --check)": median_ms(
                    partial(run_quietly, "--check", "-C", str(root)), args.runs
                ),
                "up-to-date build (ssmake)": median_ms(
                    partial(run_quietly, "-C", str(root), "-q"), args.runs
                ),
            }
        plan_calls = len(builder.builds) + len(builder.tags) + len(builder.pushes)

        # A rerun of the task's job, its image unchanged and present: the content tag.
        session = open_session(load_project(Path(tmp) / "with"))
        task = replace(session.project.tasks["train"], local_docker=True)
        service = images.ImageService(
            session.project, session.fingerprinter, backend="local", report=lambda e: None
        )
        service.resolve(task)  # the one build: from now on the image exists
        resolve_ms = median_ms(lambda: service.resolve(task), args.runs)
        resolve_builds = len(builder.builds) - 1
    print(
        f"one task: {args.code_files} code files; docker context {args.context_files} files "
        f"(+{args.context_files} .dockerignored); warm hash cache; in-process medians of "
        f"{args.runs} runs"
    )
    print(f"{'':30}{'without':>10}{'with':>10}{'difference':>12}{'ratio':>8}   dockerfile")
    for name in rows["without"]:
        a, b = rows["without"][name], rows["with"][name]
        print(f"{name:30}{a:8.1f}ms{b:8.1f}ms{b - a:+10.1f}ms{b / a:7.2f}x")
    print(f"{'image resolve, unchanged image':30}{'':10}{resolve_ms:8.1f}ms")
    print(
        f"docker calls: plans and up-to-date builds {plan_calls}; "
        f"unchanged-image resolves {resolve_builds} builds, {len(builder.pushes)} pushes"
    )
    added = rows["with"]["plan (ssmake --check)"] - rows["without"]["plan (ssmake --check)"]
    met = added < 50 and plan_calls == 0 and resolve_builds == 0 and not builder.pushes
    verdict = "met" if met else "NOT met"
    print(f"target: a dockerfile adds < 50 ms to the plan, no docker call: {verdict}")


if __name__ == "__main__":
    main()
