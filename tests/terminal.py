"""Run ssmake under a pseudo-terminal and a terminal emulator (pyte): what a person
sees, at a given size."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyte

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Terminal:
    code: int
    screen: list[str]  # the rows at the end, right-trimmed
    output: bytes  # every byte the program wrote

    @property
    def text(self) -> str:
        return "\n".join(self.screen)


def run_in_terminal(
    argv: list[str],
    cwd: Path,
    *,
    cols: int = 80,
    rows: int = 24,
    env: dict[str, str] | None = None,
    send: tuple[Callable[[pyte.Screen], bool], bytes] | None = None,
    timeout: float = 60,
) -> Terminal:
    """`ssmake ARGV` in `cwd` on a `cols`x`rows` terminal; `send` types its bytes
    (b"\\x03" is Ctrl-C) once its condition holds on the screen."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", **(env or {})}
    environment.pop("COLUMNS", None)
    environment.pop("LINES", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-m", "ssmake.cli", *argv], environment)
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    output = bytearray()
    deadline = time.monotonic() + timeout
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            output += data
            stream.feed(data)
        if send is not None and not sent and send[0](screen):
            os.write(fd, send[1])
            sent = True
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    return Terminal(code, [line.rstrip() for line in screen.display], bytes(output))
