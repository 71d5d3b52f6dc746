"""What the engine reports while it works. It never prints: a reporter does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BuildStarted:
    """The tasks one build considers, upstream first (a board's `N/M done`)."""

    tasks: tuple[str, ...]


@dataclass(frozen=True)
class BuildStopping:
    """Ctrl-C: the build launches nothing more and waits for its jobs to stop."""


@dataclass(frozen=True)
class TaskQueued:
    task: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class TaskUpToDate:
    task: str
    job: str | None


@dataclass(frozen=True)
class TaskRestored:
    """A stale task whose fingerprint matched an earlier run: restored, not run."""

    task: str
    job: str


@dataclass(frozen=True)
class TaskStarted:
    task: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class JobLaunched:
    task: str
    job: str
    backend: str


@dataclass(frozen=True)
class JobStatus:
    task: str
    job: str
    message: str


@dataclass(frozen=True)
class SyncProgress:
    """Bytes of a local input uploaded so far, of at most `total` (unchanged files
    are skipped, so a sync may end below it)."""

    task: str
    channel: str
    done: int
    total: int


@dataclass(frozen=True)
class PhaseProgress:
    """Progress of a phase a user waits on (hashing, staging, downloading), in
    bytes; `done == total` ends it. A reporter shows the rate and time left."""

    task: str
    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class LogLine:
    task: str
    host: str
    line: str


@dataclass(frozen=True)
class TaskDone:
    task: str
    job: str
    duration: float
    # What the job cost, as said: "billed 4m 3s spot, $0.05 (saved 67%)" or "$0 on local".
    cost: str = ""


@dataclass(frozen=True)
class TaskFailedEvent:
    task: str
    job: str | None
    message: str
    log_tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskBlocked:
    task: str
    reason: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know that is not about one task's progress."""

    message: str
    task: str | None = None


Event = (
    BuildStarted
    | BuildStopping
    | TaskQueued
    | TaskUpToDate
    | TaskRestored
    | TaskStarted
    | JobLaunched
    | JobStatus
    | LogLine
    | SyncProgress
    | PhaseProgress
    | TaskDone
    | TaskFailedEvent
    | TaskBlocked
    | Notice
)
Reporter = Callable[[Event], None]


def ignore_events(event: Event) -> None:
    """A reporter that drops everything (for the Python API's quiet mode)."""
