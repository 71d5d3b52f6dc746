"""The live board of `ssmake run` and `ssmake watch` on a terminal: a header with
N/M done, one row per task (state, elapsed time, job or reason), progress bars with
rate and time left for the phases a user waits on, and a summary line for the rows
that do not fit. Failures, notices and (for `run`) the jobs' log lines print above
it. Everything shown is literal text: log lines are never read as markup."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

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
from ssmake.project.graph import summary
from ssmake.project.matrix import group_of
from ssmake.ui.console import console
from ssmake.ui.lines import BannerFilter, describe, failure_text

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.text import Text

_STYLES = {
    "running": "yellow",
    "done": "green",
    "restored": "green",
    "failed": "red bold",
    "not run": "red",
    "stopped": "red",
    "up to date": "dim",
}
# The summary line's order, and what counts as done in the header's N/M.
_ORDER = ("up to date", "restored", "done", "running", "waiting", "failed", "not run", "stopped")
_DONE = frozenset({"up to date", "restored", "done"})
# Each task's log prefix has its own colour, so that -j output stays readable.
_PALETTE = ("cyan", "magenta", "blue", "green", "yellow", "bright_cyan", "bright_magenta")


@dataclass
class _Row:
    state: str = "waiting"
    since: float = field(default_factory=time.monotonic)
    took: float | None = None
    detail: str = ""
    logs: deque[str] = field(default_factory=deque)


def clock(seconds: float) -> str:
    """`0:03:12`"""
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _width(cell: Any) -> int:
    from rich.text import Text

    return cell.cell_len if isinstance(cell, Text) else len(str(cell))


def _seconds(took: float) -> str:
    return f"{took:.1f}s" if took < 10 else f"{took:.0f}s"


class Board:
    """A rich Live board; the reporter of a build's events, and the watch's view."""

    def __init__(self, stream: IO[str], *, verbosity: int = 0, watch: bool = False) -> None:
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.verbosity = verbosity
        self.watch = watch
        self.log_lines = 3 if watch else 0
        # `run` shows every log line above the board; `watch` keeps the last few in
        # the board, and prints them above only with -v.
        self.print_logs = verbosity > 0 if watch else verbosity >= 0
        self.console = console(stream)
        self._rows: dict[str, _Row] = {}
        self._colours: dict[str, str] = {}
        self._banners = BannerFilter(verbosity)
        self._logged: set[str] = set()
        self._started = time.monotonic()
        self._trigger: tuple[str, ...] = ()
        self._trigger_at = ""
        self._builds = 0
        self._status = "starting" if watch else ""
        self._lock = threading.Lock()
        self._progress: Progress = Progress(
            TextColumn("  {task.description}", markup=False),
            BarColumn(bar_width=24),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._bars: dict[tuple[str, str], TaskID] = {}
        self._live = Live(
            console=self.console,
            refresh_per_second=4,
            transient=False,
            get_renderable=self._render,
        )
        self._live.start()

    # -- drawing -------------------------------------------------------------

    def _header(self) -> Text:
        from rich.text import Text

        done = sum(1 for row in self._rows.values() if row.state in _DONE)
        head = Text("ssmake watch" if self.watch else "ssmake", style="bold")
        head.append(f"  {done}/{len(self._rows)} done  {clock(time.monotonic() - self._started)}")
        if self._builds:
            more = f" and {len(self._trigger) - 3} more" if len(self._trigger) > 3 else ""
            why = ", ".join(self._trigger[:3]) + more if self._trigger else "the first"
            head.append(f"  build {self._builds} at {self._trigger_at}, for {why}")
        return head

    def _summary(self) -> str:
        counts: dict[str, int] = {}
        for row in self._rows.values():
            counts[row.state] = counts.get(row.state, 0) + 1
        parts = [f"{counts.pop(s)} {s}" for s in _ORDER if s in counts]
        parts += [f"{n} {s}" for s, n in counts.items()]
        return ", ".join([*parts, clock(time.monotonic() - self._started)])

    def _lines(
        self, task: str, row: _Row, now: float, logs: bool, group: str = ""
    ) -> list[tuple[Any, ...]]:
        from rich.text import Text

        style = _STYLES.get(row.state, "")
        took = now - row.since if row.state == "running" else row.took
        # An expansion shows under its task's line by its values: `  [lr=0.1]`.
        label = Text(f"  {task[len(group) :]}") if group else Text(task, style="bold")
        lines: list[tuple[Any, ...]] = [
            (
                label,
                Text(row.state, style=style),
                _seconds(took) if took is not None else "",
                Text(row.detail),
            )
        ]
        if logs and row.state == "running":
            lines += [("", "", "", Text(line, style="dim")) for line in row.logs]
        return lines

    def _grouped(self, now: float) -> list[tuple[Any, ...]]:
        """Every row, a matrix task's expansions under a line for the task."""
        from rich.text import Text

        groups: dict[str, list[tuple[str, _Row]]] = {}
        for task, row in self._rows.items():
            groups.setdefault(group_of(task), []).append((task, row))
        lines: list[tuple[Any, ...]] = []
        for group, members in groups.items():
            if [task for task, _ in members] == [group]:
                lines += self._lines(group, members[0][1], now, True)
                continue
            states = [row.state for _, row in members]
            lines.append((Text(group, style="bold"), "", "", Text(summary(states))))
            for task, row in members:
                lines += self._lines(task, row, now, True, group)
        return lines

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            now = time.monotonic()
            bars = sum(1 for t in self._progress.tasks if t.visible)
            # The header, the status or summary line, the bars and the cursor's line.
            room = max(1, self.console.size.height - 3 - bars)
            shown = self._grouped(now)
            summary = None
            if len(shown) > room:
                # Too many: keep the running and failed tasks in view, fold the rest.
                urgent = [
                    line
                    for task, row in self._rows.items()
                    if row.state in ("running", "failed")
                    for line in self._lines(task, row, now, False)
                ]
                shown = urgent[: max(0, room - 1)]
                summary = Text(self._summary(), style="bold")
            table = Table.grid(padding=(0, 2))
            for _ in range(3):
                table.add_column(no_wrap=True)
            # The detail (a job name, a reason) is what gives way on a narrow terminal.
            widths = [
                max((Text(str(line[i])).cell_len for line in shown), default=0) for i in range(3)
            ]
            rest = max(10, self.console.width - sum(widths) - 6)
            table.add_column(no_wrap=True, overflow="ellipsis", max_width=rest)
            for line in shown:
                table.add_row(*line)
            parts: list[Any] = [self._header(), table]
            if summary is not None:
                parts.append(summary)
            if bars:
                parts.append(self._progress)
            if self._status:
                parts.append(Text(self._status, style="dim"))
        return Group(*parts)

    def _print(self, text: str | Text, style: str = "") -> None:
        self.console.print(text, style=style, soft_wrap=False)

    # -- events --------------------------------------------------------------

    def _row(self, task: str) -> _Row:
        return self._rows.setdefault(task, _Row())

    def _bar(self, task: str, phase: str, done: int, total: int) -> None:
        key = (task, phase)
        if key not in self._bars:
            self._bars[key] = self._progress.add_task(f"{task}: {phase}", total=total)
        self._progress.update(self._bars[key], completed=done, total=total)
        if done >= total:
            self._progress.remove_task(self._bars.pop(key))

    def _end_bars(self, task: str) -> None:
        for key in [k for k in self._bars if k[0] == task]:
            self._progress.remove_task(self._bars.pop(key))

    def __call__(self, event: Event) -> None:
        if isinstance(event, LogLine):
            if self._banners.hides(event):
                return
            if self.print_logs:
                self._logged.add(event.task)
        if isinstance(event, TaskStarted):
            self._banners.reset(event.task)
            self._logged.discard(event.task)
        with self._lock:
            self._update(event)
        if isinstance(event, LogLine) and self.print_logs:
            from rich.text import Text

            colour = self._colours.setdefault(
                event.task, _PALETTE[len(self._colours) % len(_PALETTE)]
            )
            line = Text(f"[{event.task} {event.host}] ", style=colour)
            line.append(event.line)
            self._print(line)
        elif isinstance(event, TaskFailedEvent):
            from rich.text import Text

            line = Text(f"ssmake: {event.task}: FAILED: ", style="bold red")
            # The tail once: not again when the job's lines were printed as they came.
            line.append(failure_text(event, with_tail=event.task not in self._logged))
            self._print(line)
        elif isinstance(event, Notice | JobStatus | TaskRestored | BuildStopping):
            text = describe(event, self.verbosity)
            if text is not None:
                self._print(text)

    def _update(self, event: Event) -> None:
        match event:
            case BuildStarted(tasks=tasks):
                for task in tasks:
                    self._rows.setdefault(task, _Row())
            case BuildStopping():
                self._status = "stopping (Ctrl-C): waiting for running jobs to stop"
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
            case SyncProgress(task=task, channel=channel, done=done, total=total):
                self._bar(task, f"uploading {channel}", done, total)
            case PhaseProgress(task=task, phase=phase, done=done, total=total):
                self._bar(task, phase, done, total)
            case TaskDone(task=task, job=job, duration=duration, cost=cost):
                self._end_bars(task)
                detail = f"{job}, {cost}" if cost else job
                self._rows[task] = _Row("done", took=duration, detail=detail)
            case TaskFailedEvent(task=task, job=job):
                self._end_bars(task)
                row = self._row(task)
                row.state, row.took = "failed", time.monotonic() - row.since
                if self.watch:
                    row.detail = "retried after the next save to its files"
                else:
                    row.detail = f"job {job}" if job else row.detail
            case TaskBlocked(task=task, reason=reason):
                self._rows[task] = _Row("not run", detail=reason)
            case TaskUpToDate(task=task, job=job):
                self._rows[task] = _Row("up to date", detail=job or "")
            case TaskRestored(task=task, job=job):
                self._rows[task] = _Row("restored", detail=f"from {job}")

    # -- the watch's view ----------------------------------------------------

    def _stop_running(self) -> None:
        # An interrupted task reports nothing: the build that ran it has ended.
        for task, row in self._rows.items():
            if row.state == "running":
                row.state, row.took = "stopped", time.monotonic() - row.since
                self._end_bars(task)

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
        self._print(f"ssmake: error: {message}", style="red")
        with self._lock:
            self._status = "error (above); still watching"

    def close(self) -> None:
        with self._lock:
            self._stop_running()
        self._live.update(self._render(), refresh=True)
        self._live.stop()
