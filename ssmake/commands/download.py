"""`ssmake download TASK`: bring the results of the task's last run back, saying so
when they are older than the task's last (failed) attempt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssmake.build.downloads import download_results
from ssmake.build.failures import ago, describe_failure
from ssmake.commands import common
from ssmake.commands.tasks_json import marker_epoch
from ssmake.errors import EXIT_OK, SsmakeError
from ssmake.project.graph import only
from ssmake.ui.report import make_reporter


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    name = only(session.project, args.task)
    task = session.project.tasks[name]
    marker = session.planner.read_marker(name)
    if marker is None:
        raise SsmakeError(f"task {name} has no result yet: run 'ssmake {name}' first")
    failure = session.planner.read_failure(name)
    if failure is not None:
        print(
            f"ssmake: note: these results (job {marker.get('job')}, "
            f"{ago(marker_epoch(marker))}) are older than the task's last attempt, "
            f"which failed: {describe_failure(name, failure)}",
            file=sys.stderr,
        )
    kinds = [k for k in ("model", "output", "state", "logs") if getattr(args, k)]
    kinds = kinds or list(task.download) or ["model", "output"]
    out = args.out or task.output_path or f"output/{name}"
    dest = Path(out) if Path(out).is_absolute() else session.project.root / out
    reporter = make_reporter(verbosity=common.verbosity(args))
    try:
        written = download_results(
            session.store,
            session.project.name,
            name,
            marker,
            dest,
            kinds,
            session.work_dir,
            reporter,
        )
    finally:
        close = getattr(reporter, "close", None)
        if close is not None:
            close()
    for path in written:
        print(path)
    return EXIT_OK
