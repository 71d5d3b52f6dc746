"""Progress told now and then: the bytes done of a phase a user waits on (hashing,
staging, downloading). One counter for every phase, below every layer."""

from __future__ import annotations

import time
from collections.abc import Callable

Tell = Callable[[int, int], None]


class Throttled:
    """Adds up bytes and tells `(done, total)`: at the start, at most once per
    `interval` seconds, and at the end, never the same amount twice. It tells
    nothing when `total` is under `min_bytes`: a wait too short to show."""

    def __init__(self, total: int, tell: Tell | None, *, min_bytes: int, interval: float) -> None:
        self.total, self.done, self.interval = total, 0, interval
        self.tell = tell if total >= min_bytes else None
        self.last, self.sent = time.monotonic(), -1
        self._send()

    @property
    def active(self) -> bool:
        return self.tell is not None

    def add(self, n: int) -> None:
        self.done = min(self.done + n, self.total)
        if self.done == self.total or time.monotonic() - self.last >= self.interval:
            self._send()

    def finish(self) -> None:
        self.done = self.total
        self._send()

    def _send(self) -> None:
        if self.tell is not None and self.done != self.sent:
            self.last, self.sent = time.monotonic(), self.done
            self.tell(self.done, self.total)
