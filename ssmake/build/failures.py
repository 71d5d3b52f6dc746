"""A failed job, told so that the user can act on it: log lines point at the
user's own files, a missing module says where requirements go, and the attempt is
recorded (`failed.json`) for `status`, `explain`, `logs` and `download`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath

from ssmake.errors import TaskFailed
from ssmake.plan import layout
from ssmake.plan.planner import Marker
from ssmake.project.model import Task
from ssmake.stores import Store

_MISSING = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")
_EXIT = re.compile(r"exit code (-?\d+)")


def user_paths(task: Task, job: str) -> Callable[[str], str]:
    """A function that rewrites the job's copy of the code (`.ssmake/cache/runs/JOB/
    algo-1/code/`, `/opt/ml/code/`) in a log line to where it lives in the project."""
    base = task.source_dir or str(PurePosixPath(task.entry_point).parent)
    here = "" if base in ("", ".") else base.rstrip("/") + "/"
    copy = re.compile(rf"[^\s\"']*/runs/{re.escape(job)}/[^/\s\"']+/code/|/opt/ml/code/")
    return lambda line: copy.sub(here, line)


def missing_module_hint(task: Task, backend: str, tail: Sequence[str]) -> str:
    """What to do about a ModuleNotFoundError in a task without requirements."""
    found = next((m for line in tail if (m := _MISSING.search(line))), None)
    if found is None or task.requirements is not None:
        return ""
    runs_on = "ssmake's own interpreter" if backend == "local" else "the framework image"
    where = PurePosixPath(task.source_dir or ".", "requirements.txt")
    return (
        f"\nhint: task {task.name} has no requirements file, so it runs on {runs_on}, "
        f"which has no module '{found.group(1)}': add it to {where}"
        + ("" if task.source_dir else f' and set requirements = "{where}" in [tasks.{task.name}]')
    )


def job_failed(
    store: Store,
    project: str,
    task: Task,
    fingerprint: str,
    job: str,
    message: str,
    tail: Sequence[str],
    *,
    backend: str,
) -> TaskFailed:
    """Record the failed attempt and return the error that reports it."""
    tail = [user_paths(task, job)(line) for line in tail]
    record = {
        "job": job,
        "fingerprint": fingerprint,
        "reason": message,
        "exit_code": int(m.group(1)) if (m := _EXIT.search(message)) else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "epoch": round(time.time(), 3),
        "log_tail": list(tail),
    }
    store.put(layout.failure_key(project, task.name), json.dumps(record, indent=1).encode())
    hint = missing_module_hint(task, backend, tail)
    return TaskFailed(f"task {task.name}: job {job} {message}{hint}", job=job, log_tail=tuple(tail))


def ago(epoch: float, now: float | None = None) -> str:
    """`4 min ago`"""
    seconds = max(0.0, (time.time() if now is None else now) - epoch)
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return f"{int(seconds)} s ago"


def describe_failure(task: str, record: Marker, *, hint: bool = True) -> str:
    """`job train-3f2a-2, exit 1, 4 min ago (ssmake logs train)`"""
    code = record.get("exit_code")
    how = f"exit {code}" if code is not None else str(record.get("reason", "failed"))
    when = ago(float(record.get("epoch", 0)))
    return f"job {record.get('job')}, {how}, {when}" + (f" (ssmake logs {task})" if hint else "")
