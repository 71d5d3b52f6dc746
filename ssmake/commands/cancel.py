"""`ssmake cancel TASK`: stop the task's running job."""

from __future__ import annotations

import argparse
import sys

from ssmake.commands import common
from ssmake.errors import EXIT_OK, SsmakeError
from ssmake.project.graph import only


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    name = only(session.project, args.task)
    inflight = session.planner.read_inflight(name)
    if inflight is None:
        raise SsmakeError(f"task {name} has no running job")
    session.backend().stop(str(inflight["job"]))
    print(f"stopping job {inflight['job']} of task {name}", file=sys.stderr)
    return EXIT_OK
