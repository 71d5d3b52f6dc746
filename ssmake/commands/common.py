"""What several commands take from their arguments: the project, a session, verbosity."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ssmake.build.session import Session
    from ssmake.project.model import Project


def ssmfile_path(args: argparse.Namespace) -> Path | None:
    """The -f Ssmfile, relative to where ssmake was started; None for DIR/Ssmfile.toml."""
    ssmfile = Path(args.ssmfile) if args.ssmfile else None
    if ssmfile is not None and not ssmfile.is_absolute():
        ssmfile = Path.cwd() / ssmfile
    return ssmfile


def load(args: argparse.Namespace) -> Project:
    from ssmake.project.load import load_project

    return load_project(Path(args.directory).resolve(), ssmfile_path(args))


def session(args: argparse.Namespace) -> Session:
    from ssmake.build.session import open_session

    return open_session(load(args), backend=getattr(args, "backend", None))


def verbosity(args: argparse.Namespace) -> int:
    return int(getattr(args, "verbose", 0)) - int(getattr(args, "quiet", 0))
