"""`ssmake logs TASK`: the log lines of the task's latest job (a running one, a
failed one, or the one whose results are current), under a header naming the job,
how it ended and when; `--job NAME` picks another job; -F follows a running one."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ssmake.build.failures import ago, describe_failure, user_paths
from ssmake.build.inflight import holder_alive
from ssmake.commands import common
from ssmake.commands.tasks_json import marker_epoch
from ssmake.errors import EXIT_OK, SsmakeError
from ssmake.plan import layout
from ssmake.project.graph import only

if TYPE_CHECKING:
    from ssmake.build.session import Session


def _latest(session: Session, task: str) -> tuple[str | None, str]:
    """The latest job of `task`, and the header line that names it."""
    inflight = session.planner.read_inflight(task)
    if inflight is not None and inflight.get("job"):
        return str(inflight["job"]), f"job {inflight['job']}, running"
    failure = session.planner.read_failure(task)
    if failure is not None and failure.get("job"):
        return str(failure["job"]), f"failed: {describe_failure(task, failure, hint=False)}"
    marker = session.planner.read_marker(task)
    if marker is not None and marker.get("job"):
        return str(marker["job"]), f"job {marker['job']}, completed, {ago(marker_epoch(marker))}"
    return None, ""


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    name = only(session.project, args.task)
    if args.job:
        job: str | None = args.job
        header = f"job {args.job}"
    else:
        job, header = _latest(session, name)
    if not job:
        raise SsmakeError(f"task {name} has no job yet: run 'ssmake {name}' first")
    inflight = session.planner.read_inflight(name)
    if args.follow and inflight is not None and inflight.get("job") == job:
        return _follow(session, name, job)
    # The header goes to stderr: stdout stays the log, for grep and files.
    print(f"==> {name}: {header} <==", file=sys.stderr)
    prefix = layout.logs_prefix(session.project.name, name, job)
    objects = list(session.store.list(prefix))
    # As the build showed them: paths in the user's files, not in the job's copy.
    shown = user_paths(session.project.tasks[name], job)
    if not objects:
        run_logs = session.work_dir / "runs" / job / "logs"
        files = sorted(run_logs.glob("*.log")) if run_logs.is_dir() else []
        if not files:
            raise SsmakeError(f"no logs stored for job {job} of task {name}")
        for path in files:
            for line in path.read_text(errors="replace").splitlines():
                print(f"[{path.stem}] {shown(line)}")
        return EXIT_OK
    for obj in objects:
        host = obj.key[len(prefix) :].removesuffix(".log")
        for line in session.store.get(obj.key).decode(errors="replace").splitlines():
            print(f"[{host}] {shown(line)}")
    return EXIT_OK


def _follow(session: Session, task: str, job: str) -> int:
    """Print a running job's log lines as they come, until it ends."""
    backend = session.backend()
    if backend.detaches:
        result = backend.wait(
            job,
            lambda host, line: print(f"[{host}] {line}", flush=True),
            lambda status: print(f"ssmake: {task}: {status}", file=sys.stderr),
            threading.Event(),
        )
        print(f"ssmake: {task}: job {job} {result.status.lower()}", file=sys.stderr)
        return EXIT_OK
    logs = session.work_dir / "runs" / job / "logs"
    offsets: dict[Path, int] = {}
    while True:
        record = session.planner.read_inflight(task)
        # A record whose ssmake process died is no running job: stop following.
        running = record is not None and holder_alive(record)
        for path in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            with path.open("rb") as f:
                f.seek(offsets.get(path, 0))
                data = f.read()
            complete = data[: data.rfind(b"\n") + 1]
            offsets[path] = offsets.get(path, 0) + len(complete)
            for line in complete.decode(errors="replace").splitlines():
                print(f"[{path.stem}] {line}", flush=True)
        if not running:
            return EXIT_OK
        time.sleep(0.2)
