"""The plain-text line of each engine event, and sizes in human units; shared by the
plain reporter and the live board, which prints failures and notices above itself."""

from __future__ import annotations

from collections.abc import Sequence

from ssmake.events import (
    BuildStarted,
    BuildStopping,
    Event,
    JobLaunched,
    JobStatus,
    LogLine,
    Notice,
    PhaseProgress,
    SyncProgress,
    TaskBlocked,
    TaskDone,
    TaskFailedEvent,
    TaskQueued,
    TaskRestored,
    TaskStarted,
    TaskUpToDate,
)


def took(seconds: float) -> str:
    """`0.4s` for a quick job, `12m 10s` for a longer one."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s"


def human_size(n: float) -> str:
    """`2.7 GiB`, `512 B`: binary units, one decimal above bytes."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


BANNER = "Invoking script with the following command:"


class BannerFilter:
    """Hides the `Invoking script with the following command:` banner each instance
    logs (as SageMaker's toolkit does: the line, a blank, the command, a blank; the
    blanks are gone in CloudWatch): with -v it is shown once per job."""

    def __init__(self, verbosity: int) -> None:
        self.verbosity = verbosity
        self._within: dict[tuple[str, str], str] = {}
        self._shown: set[str] = set()

    def hides(self, event: LogLine) -> bool:
        key = (event.task, event.host)
        if event.line == BANNER:
            show = self.verbosity > 0 and event.task not in self._shown
            self._shown.add(event.task)
            if not show:
                self._within[key] = "command"
            return not show
        return self._hides(key, event.line)

    def _hides(self, key: tuple[str, str], line: str) -> bool:
        within = self._within.get(key)
        if within == "command":
            if line.strip():
                self._within[key] = "blank"
            return True
        if within == "blank":
            del self._within[key]
            return not line.strip()
        return False

    def reset(self, task: str) -> None:
        """A new job of `task` shows its banner again (with -v)."""
        self._shown.discard(task)


def without_banner(lines: Sequence[str]) -> list[str]:
    """A log tail without the banner."""
    banners = BannerFilter(0)
    return [ln for ln in lines if not banners.hides(LogLine("", "", ln))]


def failure_text(event: TaskFailedEvent, *, with_tail: bool) -> str:
    """The failure's message, and the failing instance's last log lines if asked."""
    lines = without_banner(event.log_tail) if with_tail else []
    tail = "".join(f"\n  | {line}" for line in lines)
    return event.message + tail


def describe(event: Event, verbosity: int) -> str | None:
    """The plain-text line for an event, or None when this verbosity hides it."""
    match event:
        case TaskUpToDate(task=task):
            return f"ssmake: {task} is up to date" if verbosity >= 0 else None
        case TaskRestored(task=task, job=job):
            return f"ssmake: {task}: restored from an earlier run ({job}), not run again"
        case TaskStarted(task=task, reasons=reasons):
            why = f" ({'; '.join(reasons)})" if reasons and verbosity >= 0 else ""
            return f"ssmake: {task}: running{why}"
        case JobLaunched(task=task, job=job, backend=backend):
            return f"ssmake: {task}: launched job {job} on {backend}" if verbosity >= 0 else None
        case JobStatus(task=task, message=message):
            return f"ssmake: {task}: {message}" if verbosity >= 1 else None
        case LogLine(task=task, host=host, line=line):
            return f"[{task} {host}] {line}" if verbosity >= 0 else None
        case TaskDone(task=task, job=job, duration=duration, cost=cost):
            spent = f", {cost}" if cost else ""
            return f"ssmake: {task}: done in {took(duration)}{spent} (job {job})"
        case TaskFailedEvent(task=task):
            return f"ssmake: {task}: FAILED: {failure_text(event, with_tail=True)}"
        case TaskBlocked(task=task, reason=reason):
            return f"ssmake: {task}: not run: {reason}"
        case Notice(message=message, task=task):
            if verbosity < 0:
                return None
            return f"ssmake: {task}: {message}" if task else f"ssmake: {message}"
        case SyncProgress(task=task, channel=channel, total=total):
            return f"ssmake: {task}: uploading input {channel} (up to {human_size(total)})"
        case PhaseProgress(task=task, phase=phase, total=total):
            size = f" ({human_size(total)})" if total else ""
            return f"ssmake: {task}: {phase}{size}" if verbosity >= 0 else None
        case BuildStopping():
            return "ssmake: stopping (Ctrl-C): waiting for running jobs to stop"
        case TaskQueued() | BuildStarted():
            return None
    return None
