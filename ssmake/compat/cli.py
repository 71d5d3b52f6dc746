"""The `ssm` command: simple-sagemaker's command line, one task, on the ssmake engine.

The flags (`ssmake.compat.flags`) become one task (`ssmake.compat.mapping`) in a
project of that one task, built like `ssmake` builds: a task whose fingerprint
matches its last completed run is not run again.
"""

from __future__ import annotations

import sys

from ssmake.compat.flags import PROG, UsageError, build_parser
from ssmake.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, SsmakeError

TYPE_CHECKING = False  # not typing's: `ssm --help` imports this module
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

SHORT_USAGE = (
    "usage: ssm -p PROJECT_NAME -t TASK_NAME -e ENTRY_POINT [FLAG ...] [--NAME VALUE ...] "
    "(ssm -h lists the flags)"
)


AWS_SETUP_WORDS = ("AWS credentials", "AWS region")
NO_CREDENTIALS_HINT = (
    "\nssm runs jobs on SageMaker unless told otherwise: to run on this machine, "
    "pass --backend local or export SSMAKE_BACKEND=local"
)


def run(argv: Sequence[str]) -> int:
    """Parse `argv`, build its task, and say how it ended on stdout."""
    if "-h" in argv or "--help" in argv:
        # The help (or the flag error before it), then SystemExit: as task_from_args
        # parses, without importing the mapping and the task model.
        build_parser().parse_known_args(argv[1:] if argv[:1] == ["run"] else argv)
    from pathlib import Path

    from ssmake.compat.mapping import task_from_args

    root = Path.cwd()
    project_name, task, options = task_from_args(argv, root=root)
    # After parsing: flag errors need none of the engine.
    from ssmake.api import Project

    for warning in options.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    project = Project.from_tasks(
        project_name, [task], root=root, backend=options.backend, store=options.store
    )
    try:
        if options.clean_state:
            removed = project.clean_state(task.name)
            print(f"{PROG}: {task.name}: state cleared ({removed} files)", file=sys.stderr)
        force = options.force_running or options.clean_state
        (outcome,) = project.build([task.name], force=force)
    except SsmakeError as e:
        if options.default_backend and any(w in e.message for w in AWS_SETUP_WORDS):
            raise SsmakeError(e.message + NO_CREDENTIALS_HINT, e.exit_code) from e
        raise
    what = {
        "up-to-date": "already completed, not run again",
        "restored": "restored from an earlier run with the same fingerprint, not run again",
        "done": "done",
    }.get(outcome.status, outcome.status)
    line = f"{task.name}: {what} (job {outcome.job})"
    if task.output_path:
        line += f"; results in {task.output_path}"
    print(line)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `ssm` command line; returns the exit code (0, 1, 2, 3 or 130)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except SystemExit as e:  # -h/--help
        return e.code if isinstance(e.code, int) else EXIT_OK
    except UsageError as e:
        print(SHORT_USAGE, file=sys.stderr)
        print(f"{PROG}: error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except SsmakeError as e:
        print(f"{PROG}: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no marker was written for an unfinished task", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            f"{PROG}: internal error (a bug in ssmake): please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
