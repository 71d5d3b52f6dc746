"""What runs a job: the local machine or SageMaker. A Protocol and a registry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ssmake.plan.jobspec import JobSpec

LogFn = Callable[[str, str], None]
StatusFn = Callable[[str], None]
# (phase, bytes done, of total bytes): a phase of a job the user waits on.
ProgressFn = Callable[[str, int, int], None]
# How many of its last log lines a failed job's result keeps.
LOG_TAIL_LINES = 30


@dataclass
class JobResult:
    """How a job ended: Completed, Failed or Stopped, with the failing instance's log tail."""

    status: str
    failure_reason: str = ""
    log_tail: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    # SageMaker's TrainingTimeInSeconds and BillableTimeInSeconds (per instance).
    training_seconds: int | None = None
    billable_seconds: int | None = None


class Backend(Protocol):
    """Launches jobs from JobSpecs and follows them to their end."""

    name: str
    #: Whether a job keeps running when ssmake is interrupted (it can be reattached).
    detaches: bool
    #: Whether the job's logs reach the store beside its outputs (`<job>/logs/`) by the
    #: backend's own doing; otherwise the runner keeps the lines it was told.
    stores_logs: bool
    #: Between SIGTERM and SIGKILL when a job is stopped.
    grace_seconds: float

    def role_arn(self) -> str: ...

    def launch(self, spec: JobSpec) -> None:
        """Start the job named in the spec."""
        ...

    def wait(
        self,
        job: str,
        on_log: LogFn,
        on_status: StatusFn,
        interrupt: threading.Event,
        on_progress: ProgressFn | None = None,
    ) -> JobResult:
        """Follow a job until it ends, or until `interrupt` is set (then stop it, or
        detach from it when the backend detaches). A backend that copies the job's
        inputs on this machine tells `on_progress` the bytes so far."""
        ...

    def stop(self, job: str) -> None: ...

    def kill(self) -> None:
        """End every job this process follows at once, without the grace period (a
        second Ctrl-C); a backend whose jobs detach has none to end."""
        ...

    def find(self, project: str, task: str, fingerprint: str) -> str | None:
        """The name of a job of this fingerprint that is still running, if any."""
        ...


BackendFactory = Callable[..., Backend]


def _local(**kwargs: Any) -> Backend:
    from ssmake.backends.local.backend import LocalBackend

    backend: Backend = LocalBackend(**kwargs)
    return backend


def _sagemaker(**kwargs: Any) -> Backend:
    from ssmake.backends.sagemaker.jobs import SageMakerBackend

    backend: Backend = SageMakerBackend(**kwargs)
    return backend


BACKENDS: dict[str, BackendFactory] = {"local": _local, "sagemaker": _sagemaker}
