"""What the engine reports while it works. It never prints: a reporter does.

Events are NamedTuples, immutable records like frozen dataclasses but made at a
sixth of the cost: this module is imported by every build, and 15 dataclasses
cost it ~5 ms of start-up. Reporters tell them apart by type (isinstance or
`match`), never by comparing two events of different types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class BuildStarted(NamedTuple):
    """The tasks one build considers, upstream first (a board's `N/M done`)."""

    tasks: tuple[str, ...]


class BuildStopping(NamedTuple):
    """Ctrl-C: the build launches nothing more and waits for its jobs to stop."""


class TaskQueued(NamedTuple):
    task: str
    reasons: tuple[str, ...]


class TaskUpToDate(NamedTuple):
    task: str
    job: str | None


class TaskRestored(NamedTuple):
    """A stale task whose fingerprint matched an earlier run: restored, not run."""

    task: str
    job: str


class TaskStarted(NamedTuple):
    task: str
    reasons: tuple[str, ...]


class JobLaunched(NamedTuple):
    task: str
    job: str
    backend: str


class JobStatus(NamedTuple):
    task: str
    job: str
    message: str


class SyncProgress(NamedTuple):
    """Bytes of a local input uploaded so far, of at most `total` (unchanged files
    are skipped, so a sync may end below it)."""

    task: str
    channel: str
    done: int
    total: int


class PhaseProgress(NamedTuple):
    """Progress of a phase a user waits on (hashing, staging, downloading), in
    bytes; `done == total` ends it. A reporter shows the rate and time left."""

    task: str
    phase: str
    done: int
    total: int


class LogLine(NamedTuple):
    task: str
    host: str
    line: str


class TaskDone(NamedTuple):
    task: str
    job: str
    duration: float
    # What the job cost, as said: "billed 4m 3s spot, $0.05 (saved 67%)" or "$0 on local".
    cost: str = ""


class TaskFailedEvent(NamedTuple):
    task: str
    job: str | None
    message: str
    log_tail: tuple[str, ...] = ()


class TaskBlocked(NamedTuple):
    task: str
    reason: str


class Notice(NamedTuple):
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
