"""How ssmake ends when it is told to: SIGTERM (a CI time-out) and SIGHUP (a closed
terminal) as Ctrl-C, and a reader gone from its output (`ssmake status | head`)
quietly."""

from __future__ import annotations

import os
import signal
import sys

from ssmake.errors import EXIT_FAILED

# Not typing's TYPE_CHECKING: `ssmake --help` imports no typing (see cli.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI time-out) or SIGHUP (a closed terminal): handled as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def terminate_like_ctrl_c(received: list[int]) -> dict[int, Any]:
    """Make SIGTERM and SIGHUP raise `Terminated` in the main thread, as SIGINT raises
    KeyboardInterrupt: jobs are stopped, claims released. Each signal is appended to
    `received`, to exit with 128 + the first. Returns the handlers to put back."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        raise Terminated(signum)

    return {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}


def quiet_broken_pipe() -> int:
    """Whoever read our output (`ssmake status | head`) is gone: stop quietly with
    exit 1, as rich does when it meets the closed pipe first, and never write to the
    pipe again (not even when flushing at exit)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # not a real file (a test's capture): nothing flushes it at exit
    return EXIT_FAILED
