"""What `ssmake watch` shows: on a terminal a live board (one row per task with its
state and elapsed time, the last log lines of running jobs, what triggered the
last build, and the watcher's latest message), plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from ssmake.events import (
    Event,
    JobLaunched,
    LogLine,
    Notice,
    TaskBlocked,
    TaskDone,
    TaskFailedEvent,
    TaskQueued,
    TaskRestored,
    TaskStarted,
    TaskUpToDate,
)
from ssmake.project.graph import summary
from ssmake.ui.report import PlainReporter, by_group, describe

_STYLES = {
    "running": "yellow",
    "done": "green",
    "restored": "green",
    "failed": "red bold",
    "not run": "red",
    "stopped": "red",
    "up to date": "dim",
}


@dataclass
class _Row:
    state: str = "waiting"
    since: float = field(default_factory=time.monotonic)
    took: float | None = None
    detail: str = ""
    logs: deque[str] = field(default_factory=deque)


class Board:
    """A rich Live board; also the watch's reporter for engine events."""

    def __init__(self, stream: IO[str], *, verbosity: int = 0, log_lines: int = 3) -> None:
        from rich.console import Console
        from rich.live import Live

        self.verbosity = verbosity
        self.log_lines = log_lines
        self.console = Console(file=stream)
        self._rows: dict[str, _Row] = {}
        self._trigger: tuple[str, ...] = ()
        self._trigger_at = ""
        self._builds = 0
        self._status = "starting"
        self._lock = threading.Lock()
        self._live = Live(
            console=self.console,
            refresh_per_second=4,
            transient=False,
            get_renderable=self._render,
        )
        self._live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            head = "[bold]ssmake watch[/]"
            if self._builds:
                more = f" and {len(self._trigger) - 3} more" if len(self._trigger) > 3 else ""
                why = escape(", ".join(self._trigger[:3]) + more) if self._trigger else "the first"
                head += f"  build {self._builds} at {self._trigger_at}, for {why}"
            table = Table.grid(padding=(0, 2))
            now = time.monotonic()
            for group, members in by_group(list(self._rows.items())).items():
                if [task for task, _ in members] != [group]:
                    states = [row.state for _, row in members]
                    table.add_row(f"[bold]{escape(group)}[/]", summary(states), "", "")
                for task, row in members:
                    style = _STYLES.get(row.state, "")
                    state = f"[{style}]{row.state}[/]" if style else row.state
                    took = now - row.since if row.state == "running" else row.took
                    elapsed = _seconds(took) if took is not None else ""
                    # An expansion shows under its task by its values: `  [lr=0.1]`.
                    label = (
                        f"[bold]{escape(task)}[/]"
                        if task == group
                        else f"  {escape(task[len(group) :])}"
                    )
                    table.add_row(label, state, elapsed, escape(row.detail))
                    if row.state == "running":
                        for line in row.logs:
                            table.add_row("", "", "", f"[dim]{escape(line)}[/]")
            status = Text(self._status, style="dim")
        return Group(Text.from_markup(head), table, status)

    def _row(self, task: str) -> _Row:
        return self._rows.setdefault(task, _Row())

    def __call__(self, event: Event) -> None:
        with self._lock:
            match event:
                case TaskQueued(task=task):
                    self._rows[task] = _Row()
                case TaskStarted(task=task, reasons=reasons):
                    self._rows[task] = _Row("running", detail="; ".join(reasons))
                case JobLaunched(task=task, job=job):
                    self._row(task).detail = job
                case LogLine(task=task, host=host, line=line):
                    logs = self._row(task).logs
                    logs.append(f"[{host}] {line}")
                    while len(logs) > self.log_lines:
                        logs.popleft()
                case TaskDone(task=task, job=job, duration=duration):
                    self._rows[task] = _Row("done", took=duration, detail=job)
                case TaskFailedEvent(task=task):
                    row = self._row(task)
                    row.state, row.took = "failed", time.monotonic() - row.since
                    row.detail = "retried after the next save to its files"
                case TaskBlocked(task=task, reason=reason):
                    self._rows[task] = _Row("not run", detail=reason)
                case TaskUpToDate(task=task, job=job):
                    self._rows[task] = _Row("up to date", detail=job or "")
                case TaskRestored(task=task, job=job):
                    self._rows[task] = _Row("restored", detail=f"from {job}")
        # Failures and notices stay readable above the board; log lines only with -v.
        if isinstance(event, TaskFailedEvent | Notice) or (
            isinstance(event, LogLine) and self.verbosity > 0
        ):
            text = describe(event, self.verbosity)
            if text is not None:
                self.console.print(text, markup=False, highlight=False)

    def _stop_running(self) -> None:
        # An interrupted task reports nothing: the build that ran it has ended.
        for row in self._rows.values():
            if row.state == "running":
                row.state, row.took = "stopped", time.monotonic() - row.since

    def build_started(self, trigger: Sequence[str]) -> None:
        with self._lock:
            self._stop_running()
            self._builds += 1
            self._trigger = tuple(trigger)
            self._trigger_at = time.strftime("%H:%M:%S")
            self._status = "building"

    def note(self, message: str) -> None:
        with self._lock:
            self._status = message

    def error(self, message: str) -> None:
        self.console.print(f"ssmake: error: {message}", markup=False, highlight=False, style="red")
        with self._lock:
            self._status = "error (above); still watching"

    def close(self) -> None:
        with self._lock:
            self._stop_running()
        self._live.update(self._render(), refresh=True)
        self._live.stop()


def _seconds(took: float) -> str:
    return f"{took:.1f}s" if took < 10 else f"{took:.0f}s"


class PlainWatchView(PlainReporter):
    """Plain lines, for pipes and logs: `ssmake: watch: change in x.py: rebuilding`."""

    def build_started(self, trigger: Sequence[str]) -> None:
        pass  # the watcher's note already says what triggered the build

    def note(self, message: str) -> None:
        if self.verbosity >= 0:
            self._say(f"ssmake: watch: {message}")

    def error(self, message: str) -> None:
        self._say(f"ssmake: error: {message}")

    def close(self) -> None:
        pass


def make_view(stream: IO[str] | None = None, *, verbosity: int = 0) -> Board | PlainWatchView:
    """The live board on a terminal, plain lines otherwise."""
    target = stream if stream is not None else sys.stderr
    if target.isatty():
        return Board(target, verbosity=verbosity)
    return PlainWatchView(target, verbosity=verbosity)
