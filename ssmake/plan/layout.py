"""The store's key layout (DESIGN.md, "Store layout"), in one place.

Each function takes a task's name; its keys use the name's slug, which for an
expansion of a matrix (`train[lr=0.1]`) is `train-lr-0-1`."""

from __future__ import annotations

from ssmake.project.matrix import slug

MARKER = "ssmake.json"


def task_prefix(project: str, task: str) -> str:
    return f"{project}/{slug(task)}/"


def marker_key(project: str, task: str) -> str:
    return f"{project}/{slug(task)}/{MARKER}"


def run_record_key(project: str, task: str, fingerprint: str) -> str:
    return f"{project}/{slug(task)}/runs/{fingerprint}.json"


def inflight_key(project: str, task: str) -> str:
    return f"{project}/{slug(task)}/inflight.json"


def failure_key(project: str, task: str) -> str:
    """The task's last failed attempt, when it is newer than the marker."""
    return f"{project}/{task}/failed.json"


def state_prefix(project: str, task: str) -> str:
    return f"{project}/{slug(task)}/state/"


def input_prefix(project: str, task: str) -> str:
    return f"{project}/{slug(task)}/input/"


def code_key(project: str, task: str, sha: str) -> str:
    return f"{project}/{slug(task)}/code/{sha}.tar.gz"


def job_prefix(project: str, task: str, job: str) -> str:
    return f"{project}/{slug(task)}/{job}/"


def model_key(project: str, task: str, job: str) -> str:
    return f"{project}/{slug(task)}/{job}/output/model.tar.gz"


def output_key(project: str, task: str, job: str) -> str:
    return f"{project}/{slug(task)}/{job}/output/output.tar.gz"


def logs_prefix(project: str, task: str, job: str) -> str:
    return f"{project}/{slug(task)}/{job}/logs/"


def job_name(task: str, fingerprint: str, attempt: int) -> str:
    """`<task's slug>-<fingerprint[:10]>-<attempt>`, cut to SageMaker's 63 characters."""
    suffix = f"-{fingerprint[:10]}-{attempt}"
    return slug(task)[: 63 - len(suffix)] + suffix
