"""What several commands take from their arguments: the project, a session, verbosity."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ssmake.project.load import SSMFILE

if TYPE_CHECKING:
    from ssmake.build.session import Session
    from ssmake.project.model import Project


def ssmfile_path(args: argparse.Namespace) -> Path | None:
    """The -f Ssmfile, relative to where ssmake was started; None for DIR/Ssmfile.toml."""
    ssmfile = Path(args.ssmfile) if args.ssmfile else None
    if ssmfile is not None and not ssmfile.is_absolute():
        ssmfile = Path.cwd() / ssmfile
    return ssmfile


def project_root(args: argparse.Namespace) -> Path:
    """The project's directory: DIR with -f; otherwise, as git and DVC look for their
    own, the nearest of DIR and its parents with an Ssmfile.toml (DIR when none has
    one, so that the error names the file expected there)."""
    start = Path(args.directory).resolve()
    if args.ssmfile:
        return start
    for directory in (start, *start.parents):
        if (directory / SSMFILE).is_file():
            if verbosity(args) > 0:
                print(f"ssmake: using {directory / SSMFILE}", file=sys.stderr)
            return directory
    return start


def load(args: argparse.Namespace) -> Project:
    from ssmake.project.load import load_project
    from ssmake.project.matrix import MAX_EXPANSIONS

    limit = getattr(args, "max_expansions", None) or MAX_EXPANSIONS
    return load_project(project_root(args), ssmfile_path(args), max_expansions=limit)


def session(args: argparse.Namespace) -> Session:
    from ssmake.build.session import open_session

    return open_session(load(args), backend=getattr(args, "backend", None))


def verbosity(args: argparse.Namespace) -> int:
    return int(getattr(args, "verbose", 0)) - int(getattr(args, "quiet", 0))
