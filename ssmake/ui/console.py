"""The one way ssmake makes a rich Console: text is printed literally, and
NO_COLOR (https://no-color.org) removes all styling."""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def console(stream: IO[str]) -> Console:
    """A Console on `stream`. Log lines come from workers and files: no markup, emoji
    codes or highlighting may reinterpret them (`[/bold]` in a traceback is text)."""
    from rich.console import Console

    return Console(
        file=stream,
        markup=False,
        emoji=False,
        highlight=False,
        color_system=None if no_color() else "auto",
    )
