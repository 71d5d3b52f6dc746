"""`ssmake watch`: rebuild on every save that matters; runs until Ctrl-C, then exits 130."""

from __future__ import annotations

import argparse
import sys

from ssmake.build.watch import Watcher
from ssmake.commands import common
from ssmake.errors import EXIT_INTERRUPTED, EXIT_OK
from ssmake.ui.report import make_view


def run(args: argparse.Namespace) -> int:
    view = make_view(verbosity=common.verbosity(args))
    watcher = Watcher(
        common.project_root(args),
        ssmfile=common.ssmfile_path(args),
        targets=args.targets,
        backend=args.backend,
        on_busy=args.on_busy,
        debounce=max(0, args.debounce) / 1000,
        jobs=args.jobs,
        view=view,
    )
    try:
        watcher.start()
        watcher.join()
    except KeyboardInterrupt:
        view.note("stopping (Ctrl-C)")
        watcher.stop()
        view.close()
        lines = ["stopped (Ctrl-C); no marker was written for unfinished tasks"]
        lines += [
            f"job {job} of task {task} keeps running; the next ssmake reattaches"
            for task, job in watcher.left_running
        ]
        for line in lines:
            print(f"ssmake: watch: {line}", file=sys.stderr)
        return EXIT_INTERRUPTED
    view.close()
    return EXIT_OK
