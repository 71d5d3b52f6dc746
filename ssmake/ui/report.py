"""Reporters: turn engine events into what the user sees on stderr."""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any, TypeVar

from ssmake.events import (
    Event,
    JobLaunched,
    JobStatus,
    LogLine,
    Notice,
    SyncProgress,
    TaskBlocked,
    TaskDone,
    TaskFailedEvent,
    TaskQueued,
    TaskRestored,
    TaskStarted,
    TaskUpToDate,
)
from ssmake.project.graph import summary
from ssmake.project.matrix import group_of


class PlainReporter:
    """One line per event; for logs, pipes and CI."""

    def __init__(self, stream: IO[str] | None = None, *, verbosity: int = 0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.verbosity = verbosity
        self._lock = threading.Lock()
        self._shown: dict[tuple[str, str], int] = {}

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, SyncProgress):
            # A line per tenth of the bytes, not per part.
            tenth = min(10, event.done * 10 // event.total) if event.total else 10
            key = (event.task, event.channel)
            if self.verbosity < 0 or self._shown.get(key, -1) >= tenth:
                return
            self._shown[key] = tenth
        line = describe(event, self.verbosity)
        if line is not None:
            self._say(line)


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
            return f"ssmake: {task}: done in {_took(duration)}{spent} (job {job})"
        case TaskFailedEvent(task=task, message=message):
            return f"ssmake: {task}: FAILED: {message}"
        case TaskBlocked(task=task, reason=reason):
            return f"ssmake: {task}: not run: {reason}"
        case Notice(message=message, task=task):
            if verbosity < 0:
                return None
            return f"ssmake: {task}: {message}" if task else f"ssmake: {message}"
        case SyncProgress(task=task, channel=channel, done=done, total=total):
            return f"ssmake: {task}: uploading input {channel}: {_mib(done)} of up to {_mib(total)}"
        case TaskQueued():
            return None
    return None


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


Row = TypeVar("Row")


def by_group(rows: list[tuple[str, Row]]) -> dict[str, list[tuple[str, Row]]]:
    """Board rows under the task each was written as: a matrix task's expansions
    together, in the order the first of them appeared."""
    groups: dict[str, list[tuple[str, Row]]] = {}
    for task, row in rows:
        groups.setdefault(group_of(task), []).append((task, row))
    return groups


class LiveReporter:
    """A live line per task on a terminal, with the instances' log lines above it."""

    def __init__(self, stream: IO[str] | None = None, *, verbosity: int = 0) -> None:
        from rich.console import Console
        from rich.live import Live

        self.verbosity = verbosity
        self.console = Console(file=stream if stream is not None else sys.stderr)
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._live = Live(
            self._render(),
            console=self.console,
            refresh_per_second=4,
            transient=False,
            get_renderable=self._render,
        )
        self._live.start()

    def _render(self) -> Any:
        from rich.markup import escape
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for group, members in by_group(list(self._rows.items())).items():
            if [task for task, _ in members] != [group]:
                states = [row["state"] for _, row in members]
                table.add_row(f"[bold]{escape(group)}[/]", summary(states), "")
            for task, row in members:
                self._add_row(table, group, task, row, now)
        return table

    def _add_row(self, table: Any, group: str, task: str, row: dict[str, Any], now: float) -> None:
        from rich.markup import escape

        state = row["state"]
        style = {
            "running": "yellow",
            "done": "green",
            "failed": "red bold",
            "up to date": "dim",
            "restored": "green",
            "not run": "red",
        }.get(state, "")
        detail = row.get("detail", "")
        if state == "running":
            detail = f"{now - row['since']:.0f}s {detail}"
        # An expansion shows under its task's line by its values: `  [lr=0.1]`.
        label = f"[bold]{escape(task)}[/]" if task == group else f"  {escape(task[len(group) :])}"
        table.add_row(label, f"[{style}]{state}[/]" if style else state, escape(detail))

    def _set(self, task: str, state: str, detail: str = "") -> None:
        with self._lock:
            row = self._rows.setdefault(task, {"since": time.monotonic()})
            if state == "running" and row.get("state") != "running":
                row["since"] = time.monotonic()
            row.update(state=state, detail=detail)

    def __call__(self, event: Event) -> None:
        match event:
            case TaskQueued(task=task):
                self._set(task, "waiting")
            case TaskUpToDate(task=task):
                self._set(task, "up to date")
            case TaskRestored(task=task, job=job):
                self._set(task, "restored", f"from {job}")
            case TaskStarted(task=task):
                self._set(task, "running")
            case JobLaunched(task=task, job=job):
                self._set(task, "running", job)
            case TaskDone(task=task, job=job, duration=duration, cost=cost):
                self._set(task, "done", f"{_took(duration)}{', ' + cost if cost else ''} {job}")
            case TaskFailedEvent(task=task, message=message):
                self._set(task, "failed")
                self.console.print(
                    f"[red]ssmake: {task}: FAILED:[/] {message}", markup=True, highlight=False
                )
            case TaskBlocked(task=task, reason=reason):
                self._set(task, "not run", reason)
            case SyncProgress(task=task, channel=channel, done=done, total=total):
                self._set(task, "uploading", f"{channel}: {_mib(done)} / {_mib(total)}")
            case LogLine(task=task, host=host, line=line):
                if self.verbosity >= 0:
                    self.console.print(
                        f"[dim]\\[{task} {host}][/] {_escape(line)}", highlight=False
                    )
            case _:
                text = describe(event, self.verbosity)
                if text:
                    self.console.print(_escape(text), highlight=False)

    def close(self) -> None:
        self._live.update(self._render(), refresh=True)
        self._live.stop()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def make_reporter(
    stream: IO[str] | None = None, *, verbosity: int = 0
) -> PlainReporter | LiveReporter:
    """A live board on a terminal, plain lines otherwise."""
    target = stream if stream is not None else sys.stderr
    if target.isatty():
        return LiveReporter(target, verbosity=verbosity)
    return PlainReporter(target, verbosity=verbosity)


def _took(seconds: float) -> str:
    """`0.4s` for a quick job, `12m 10s` for a longer one."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s"
