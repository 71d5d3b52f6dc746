"""The store's key layout (DESIGN.md, "Store layout"), in one place."""

from __future__ import annotations

MARKER = "ssmake.json"


def task_prefix(project: str, task: str) -> str:
    return f"{project}/{task}/"


def marker_key(project: str, task: str) -> str:
    return f"{project}/{task}/{MARKER}"


def run_record_key(project: str, task: str, fingerprint: str) -> str:
    return f"{project}/{task}/runs/{fingerprint}.json"


def inflight_key(project: str, task: str) -> str:
    return f"{project}/{task}/inflight.json"


def state_prefix(project: str, task: str) -> str:
    return f"{project}/{task}/state/"


def input_prefix(project: str, task: str) -> str:
    return f"{project}/{task}/input/"


def code_key(project: str, task: str, sha: str) -> str:
    return f"{project}/{task}/code/{sha}.tar.gz"


def job_prefix(project: str, task: str, job: str) -> str:
    return f"{project}/{task}/{job}/"


def model_key(project: str, task: str, job: str) -> str:
    return f"{project}/{task}/{job}/output/model.tar.gz"


def output_key(project: str, task: str, job: str) -> str:
    return f"{project}/{task}/{job}/output/output.tar.gz"


def logs_prefix(project: str, task: str, job: str) -> str:
    return f"{project}/{task}/{job}/logs/"


def job_name(task: str, fingerprint: str, attempt: int) -> str:
    """`<task>-<fingerprint[:10]>-<attempt>`, cut to SageMaker's 63 characters."""
    suffix = f"-{fingerprint[:10]}-{attempt}"
    return task[: 63 - len(suffix)] + suffix
