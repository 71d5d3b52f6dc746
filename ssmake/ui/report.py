"""Reporters: turn engine events into what the user sees on stderr. Plain lines for
pipes, logs and CI; on a terminal, the live board of ui/board.py."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from ssmake.events import (
    Event,
    LogLine,
    PhaseProgress,
    SyncProgress,
    TaskFailedEvent,
    TaskStarted,
)
from ssmake.ui.lines import BannerFilter, describe, failure_text

if TYPE_CHECKING:
    from ssmake.ui.board import Board

__all__ = ["PlainReporter", "PlainWatchView", "describe", "make_reporter", "make_view"]


class PlainReporter:
    """One line per event; a phase with progress (an upload, a download) gets one
    line when it starts, with its size in human units."""

    def __init__(self, stream: IO[str] | None = None, *, verbosity: int = 0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.verbosity = verbosity
        self._lock = threading.Lock()
        self._phases: set[tuple[str, str]] = set()
        self._banners = BannerFilter(verbosity)
        self._logged: set[str] = set()

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, LogLine):
            if self._banners.hides(event):
                return
            if self.verbosity >= 0:
                self._logged.add(event.task)
        if isinstance(event, TaskStarted):
            self._banners.reset(event.task)
            self._logged.discard(event.task)
        if isinstance(event, TaskFailedEvent):
            # The tail once: not again when the job's lines were shown as they came.
            shown = failure_text(event, with_tail=event.task not in self._logged)
            self._say(f"ssmake: {event.task}: FAILED: {shown}")
            return
        if isinstance(event, SyncProgress | PhaseProgress):
            key = (event.task, event.channel if isinstance(event, SyncProgress) else event.phase)
            seen = self.verbosity < 0 or key in self._phases
            self._phases.add(key)
            if isinstance(event, PhaseProgress) and event.done >= event.total:
                self._phases.discard(key)  # ended: the next one (a rebuild's) shows again
            if seen:
                return
        line = describe(event, self.verbosity)
        if line is not None:
            self._say(line)


class PlainWatchView(PlainReporter):
    """Plain lines, for pipes and logs: `ssmake: watch: change in x.py: rebuilding`."""

    def build_started(self, trigger: Sequence[str]) -> None:
        with self._lock:
            self._phases.clear()  # the watcher's note already says what triggered it

    def note(self, message: str) -> None:
        if self.verbosity >= 0:
            self._say(f"ssmake: watch: {message}")

    def error(self, message: str) -> None:
        self._say(f"ssmake: error: {message}")

    def close(self) -> None:
        pass


def make_reporter(stream: IO[str] | None = None, *, verbosity: int = 0) -> PlainReporter | Board:
    """The live board on a terminal, plain lines otherwise."""
    target = stream if stream is not None else sys.stderr
    if target.isatty():
        from ssmake.ui.board import Board

        return Board(target, verbosity=verbosity)
    return PlainReporter(target, verbosity=verbosity)


def make_view(stream: IO[str] | None = None, *, verbosity: int = 0) -> PlainWatchView | Board:
    """`ssmake watch`'s screen: the live board on a terminal, plain lines otherwise."""
    target = stream if stream is not None else sys.stderr
    if target.isatty():
        from ssmake.ui.board import Board

        return Board(target, verbosity=verbosity, watch=True)
    return PlainWatchView(target, verbosity=verbosity)
