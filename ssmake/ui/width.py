"""The terminal's width for argparse's help, found as `shutil.get_terminal_size`
finds it but without importing shutil (and with it bz2, lzma and fnmatch), which
argparse's formatter otherwise does on every `--help`."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: this runs on every --help
if TYPE_CHECKING:
    from argparse import HelpFormatter
    from collections.abc import Callable


def terminal_columns() -> int:
    """$COLUMNS, else the width of the terminal on stdout, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def help_formatter(base: type[HelpFormatter]) -> Callable[..., HelpFormatter]:
    """`formatter_class` for an ArgumentParser: `base` at the terminal's width
    (argparse's own default, less the two columns it keeps free)."""

    def formatter(prog: str) -> HelpFormatter:
        return base(prog, width=terminal_columns() - 2)

    return formatter
