"""One JSON schema for `run -n --json`, `run --json` and `status --json`:
`{"schema": 1, "project": NAME, "tasks": [{"name", "state", "reasons",
"fingerprint", "job", "last_failure", ...}]}`; and what a stale task's job would be."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssmake.build.session import Session
    from ssmake.plan.planner import Marker, TaskPlan
    from ssmake.project.model import Task

SCHEMA = 1


def document(project: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": SCHEMA, "project": project, "tasks": tasks}


def failure_entry(record: Marker | None) -> dict[str, Any] | None:
    if record is None:
        return None
    keys = ("job", "fingerprint", "exit_code", "reason", "time")
    return {k: record.get(k) for k in keys}


def plan_entry(plan: TaskPlan, failure: Marker | None) -> dict[str, Any]:
    return {**plan.as_json(), "last_failure": failure_entry(failure)}


def image_of(task: Task, backend: str) -> str:
    """What the job would run on, without resolving or building anything."""
    if task.image.uri:
        return task.image.uri
    version = f" {task.framework_version}" if task.framework_version else ""
    base = f"{task.framework}{version} framework image"
    if task.dockerfile:
        return f"built from {task.dockerfile}/Dockerfile on the {base}"
    if backend == "local" and not task.local_docker:
        return "ssmake's own interpreter" + (" + requirements" if task.requirements else "")
    return f"the {base}"


def job_details(session: Session, task: Task) -> dict[str, Any]:
    """Backend, instances, image and the bytes the job's code and local inputs come to
    (what would be uploaded at most; unchanged files are skipped)."""
    fingerprinter = session.planner.fingerprinter
    stated = list(fingerprinter.code_files(task).values())
    for channel in task.inputs:
        if channel.path is not None:
            stated += fingerprinter.input_files(channel).values()
    size = sum(st.st_size for st, _ in stated)
    backend = session.project.backend
    return {
        "backend": backend,
        "instance_type": task.instance_type,
        "instance_count": task.instance_count,
        "image": image_of(task, backend),
        "upload_bytes": size,
    }


def marker_epoch(marker: Marker) -> float:
    try:
        import calendar  # only here: its import costs every build

        return float(calendar.timegm(time.strptime(str(marker.get("time")), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0
