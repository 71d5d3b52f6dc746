"""`ssmake clean [TASK...]`: forget results (markers, run records, synced inputs) so
that tasks run again; with --state, their state too."""

from __future__ import annotations

import argparse
import sys

from ssmake.commands import common
from ssmake.errors import EXIT_OK
from ssmake.plan import layout
from ssmake.project.graph import resolve


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    project = session.project
    names = (
        [n for t in args.tasks for n in resolve(project, t)] if args.tasks else list(project.tasks)
    )
    store = session.store
    proj = session.project.name
    for name in names:
        store.delete_prefix(layout.task_prefix(proj, name) + "runs/")
        store.delete(layout.marker_key(proj, name))
        # The synced inputs and their sync manifests: the next run uploads afresh.
        store.delete_prefix(layout.input_prefix(proj, name))
        what = "marker, run records and synced inputs"
        if args.state:
            store.delete_prefix(layout.state_prefix(proj, name))
            what += " and state"
        print(f"{name}: removed {what}", file=sys.stderr)
    return EXIT_OK
