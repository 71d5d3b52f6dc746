"""The `ssmake` command: its arguments, and which command module runs each
subcommand. Errors become messages and exit codes here, and only here."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence

from ssmake.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    SsmakeError,
)
from ssmake.project.model import COMMANDS

__all__ = ["COMMANDS", "main"]

Handler = Callable[[argparse.Namespace], int]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-C", dest="directory", metavar="DIR", default=".", help="run as if started in DIR"
    )
    parser.add_argument(
        "-f",
        "--file",
        dest="ssmfile",
        metavar="FILE",
        help="the Ssmfile to read (default: DIR/Ssmfile.toml)",
    )
    parser.add_argument(
        "--backend", choices=("local", "sagemaker"), help="override the project's backend"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say more")
    parser.add_argument(
        "-q", "--quiet", action="count", default=0, help="say less (no job log lines)"
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssmake",
        description="make for SageMaker training jobs: run only the tasks whose code, "
        "image, inputs or parameters changed, upstream first.",
        epilog="commands: " + ", ".join(COMMANDS) + " (default: run). See 'ssmake COMMAND --help'.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="build targets and what they need (the default)")
    _common(run)
    run.add_argument("targets", nargs="*", metavar="TARGET", help="tasks to build")
    run.add_argument("-n", "--dry-run", action="store_true", help="show what would run")
    run.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if anything is stale, 0 if all is up to date; run nothing",
    )
    run.add_argument(
        "-B",
        "--force",
        action="store_true",
        help="rerun the targets (all selected tasks when none is named)",
    )
    run.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        default=1,
        metavar="N",
        help="run up to N independent tasks at once",
    )
    run.add_argument(
        "-k",
        "--keep-going",
        action="store_true",
        help="keep running independent tasks after a failure",
    )
    run.add_argument("--json", action="store_true", help="print the plan or result as JSON")

    status = sub.add_parser("status", help="every task: up to date, stale (why) or running")
    _common(status)
    status.add_argument("targets", nargs="*", metavar="TARGET")
    status.add_argument("--json", action="store_true")

    explain = sub.add_parser("explain", help="what changed since a task's last run")
    _common(explain)
    explain.add_argument("task")

    graph = sub.add_parser("graph", help="print the task graph")
    _common(graph)
    graph.add_argument("--format", choices=("text", "dot", "mermaid"), default="text")

    logs = sub.add_parser("logs", help="print the logs of a task's last job")
    _common(logs)
    logs.add_argument("task")
    logs.add_argument("-F", "--follow", action="store_true", help="follow a running job")

    watch = sub.add_parser("watch", help="rebuild on every save")
    _common(watch)
    watch.add_argument("targets", nargs="*", metavar="TARGET")
    watch.add_argument("--on-busy", choices=("queue", "restart"), default="queue")
    watch.add_argument("--debounce", type=int, default=100, metavar="MS")
    watch.add_argument("-j", "--jobs", type=_positive, default=1, metavar="N")

    download = sub.add_parser("download", help="bring a task's results back")
    _common(download)
    download.add_argument("task")
    download.add_argument(
        "-o",
        "--dir",
        dest="out",
        metavar="DIR",
        help="where to (default: the task's output_path)",
    )
    for kind in ("model", "output", "state", "logs"):
        download.add_argument(f"--{kind}", action="store_true", help=f"download the {kind}")

    clean = sub.add_parser("clean", help="forget results so that tasks run again")
    _common(clean)
    clean.add_argument("tasks", nargs="*", metavar="TASK")
    clean.add_argument("--state", action="store_true", help="also delete the tasks' state")

    init = sub.add_parser("init", help="create an example Ssmfile.toml and worker")
    init.add_argument("-C", dest="directory", metavar="DIR", default=".")

    cancel = sub.add_parser("cancel", help="stop a task's running job")
    _common(cancel)
    cancel.add_argument("task")
    return parser


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser()
    args = list(argv)
    if not args or (args[0] not in COMMANDS and args[0] not in ("-h", "--help", "--version")):
        args.insert(0, "run")
    if args and args[0] == "--version":
        from ssmake import __version__

        print(f"ssmake {__version__}")
        raise SystemExit(0)
    return parser.parse_args(args)


def _command(name: str) -> Handler:
    """The `run` of ssmake/commands/NAME.py, imported on the first call: `import
    ssmake.cli` stays cheap, and each command loads only what it uses."""

    def handler(args: argparse.Namespace) -> int:
        run: Handler = importlib.import_module(f"ssmake.commands.{name}").run
        return run(args)

    return handler


HANDLERS: dict[str, Handler] = {name: _command(name) for name in COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ssmake command line; returns the exit code."""
    try:
        args = _parse(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        return HANDLERS[args.command](args)
    except SsmakeError as e:
        print(f"ssmake: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ssmake: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        traceback.print_exc()
        print(
            "ssmake: internal error (a bug in ssmake): please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
