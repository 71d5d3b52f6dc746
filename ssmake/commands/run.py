"""`ssmake run` (the default): build the targets; with -n or --check, only print the plan."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ssmake.commands import common
from ssmake.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from ssmake.project.graph import select
from ssmake.ui.report import make_reporter

if TYPE_CHECKING:
    from ssmake.build.session import Session


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    try:
        if args.dry_run or args.check:
            return _plan(session, args)
        reporter = make_reporter(verbosity=common.verbosity(args))
        force = (args.targets or _all_selected(session, args)) if args.force else []
        engine = session.engine(reporter, jobs=args.jobs, keep_going=args.keep_going)
        try:
            result = engine.build(args.targets, force=force)
        finally:
            close = getattr(reporter, "close", None)
            if close is not None:
                close()
    finally:
        session.close()
    if args.json:
        doc = {
            "project": session.project.name,
            "tasks": [
                {
                    "name": o.task,
                    "status": o.status,
                    "fingerprint": o.fingerprint,
                    "job": o.job,
                    "duration": round(o.duration, 3),
                    "reasons": o.reasons,
                    "message": o.message,
                }
                for o in result.outcomes
            ],
        }
        print(json.dumps(doc, indent=2))
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    if result.interrupted:
        print(
            f"ssmake: interrupted ({summary}); no marker was written for unfinished tasks",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if common.verbosity(args) >= 0 or result.failed:
        print(f"ssmake: {summary}", file=sys.stderr)
    return EXIT_FAILED if result.failed else EXIT_OK


def _all_selected(session: Session, args: argparse.Namespace) -> list[str]:
    return select(session.project, args.targets)


def _plan(session: Session, args: argparse.Namespace) -> int:
    force = (args.targets or _all_selected(session, args)) if args.force else []
    plans = session.planner.plan(args.targets, force=force)
    if args.json:
        doc = {"project": session.project.name, "tasks": [p.as_json() for p in plans]}
        print(json.dumps(doc, indent=2))
    elif args.check:
        for p in plans:
            if p.state != "up-to-date":
                print(f"{p.name}: {p.state}: {'; '.join(p.reasons)}", file=sys.stderr)
    else:
        for p in plans:
            why = f" ({'; '.join(p.reasons)})" if p.reasons else ""
            print(f"{p.name}: {p.state}{why}")
    stale = any(p.state != "up-to-date" for p in plans)
    if args.check:
        return EXIT_FAILED if stale else EXIT_OK
    return EXIT_OK
