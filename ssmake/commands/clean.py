"""`ssmake clean [TASK...]`: forget results (markers, run records, synced inputs) so
that tasks run again; with --state, their state too."""

from __future__ import annotations

import argparse
import sys

from ssmake.commands import common
from ssmake.errors import EXIT_OK
from ssmake.plan import layout
from ssmake.project.graph import resolve
from ssmake.ui.lines import human_size


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    project = session.project
    names = (
        [n for t in args.tasks for n in resolve(project, t)] if args.tasks else list(project.tasks)
    )
    store = session.store
    proj = session.project.name
    total = 0
    for name in names:
        parts = [
            ("run record(s)", layout.task_prefix(proj, name) + "runs/"),
            # The synced inputs and their sync manifests: the next run uploads afresh.
            ("synced input file(s)", layout.input_prefix(proj, name)),
        ]
        if args.state:
            parts.append(("state file(s)", layout.state_prefix(proj, name)))
        removed = []
        marker = store.info(layout.marker_key(proj, name))
        if marker is not None:
            store.delete(marker.key)
            removed.append("the marker")
            total += marker.size
        for what, prefix in parts:
            objects = list(store.list(prefix))
            size = sum(o.size for o in objects)
            store.delete_prefix(prefix)
            if objects:
                removed.append(f"{len(objects)} {what} ({human_size(size)})")
                total += size
        print(f"{name}: removed {', '.join(removed) or 'nothing (no result)'}", file=sys.stderr)
    print(
        f"ssmake: removed {human_size(total)}; the jobs' outputs stay until 'ssmake gc'",
        file=sys.stderr,
    )
    return EXIT_OK
