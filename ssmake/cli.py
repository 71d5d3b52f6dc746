"""The `ssmake` command: its arguments, and which command module runs each
subcommand. Errors become messages and exit codes here, and only here."""

from __future__ import annotations

import gc
import importlib
import signal
import sys

from ssmake.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    SsmakeError,
)
from ssmake.project.names import COMMANDS
from ssmake.termination import quiet_broken_pipe, terminate_like_ctrl_c

__all__ = ["COMMANDS", "main"]

# Not typing's TYPE_CHECKING, and argparse only once arguments are parsed: a
# `--check` that the quick path answers imports neither.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    Handler = Callable[[argparse.Namespace], int]


# The options every command takes; given before the command (`ssmake -C DIR
# explain train`) or after it. Those after it override those before it.
GLOBAL_VALUES = ("-C", "-f", "--file", "--backend", "--max-expansions")
GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet")


def _common(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    import argparse

    # Below the top, an option not given leaves the top's value alone.
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "-C",
        dest="directory",
        metavar="DIR",
        help="run as if started in DIR",
        **({"default": "."} if top else default),
    )
    group.add_argument(
        "-f",
        "--file",
        dest="ssmfile",
        metavar="FILE",
        help="the Ssmfile to read (default: the nearest Ssmfile.toml in DIR or above)",
        **default,
    )
    group.add_argument(
        "--backend",
        choices=("local", "sagemaker"),
        help="override the project's backend",
        **default,
    )
    group.add_argument(
        "--max-expansions",
        type=_positive,
        metavar="N",
        help="allow a task matrix up to N combinations (default: 1000)",
        **({"default": None} if top else default),
    )
    group.add_argument(
        "-v", "--verbose", action="count", help="say more", **({"default": 0} if top else default)
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="count",
        help="say less (no job log lines)",
        **({"default": 0} if top else default),
    )


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _usd(text: str) -> float:
    import argparse

    try:
        value = float(text.removeprefix("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an amount in USD, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


# `run`'s options, also listed by the top-level help: `ssmake -n` is `ssmake run -n`.
RUN_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("-n", "--dry-run"), {"action": "store_true", "help": "show what would run, and why"}),
    (
        ("--check",),
        {
            "action": "store_true",
            "help": "exit 1 if anything is stale, 0 if all is up to date; run nothing",
        },
    ),
    (
        ("-B", "--force"),
        {"action": "store_true", "help": "rerun the targets (all selected when none is named)"},
    ),
    (
        ("-j", "--jobs"),
        {
            "type": _positive,
            "default": 1,
            "metavar": "N",
            "help": "run up to N independent tasks at once",
        },
    ),
    (
        ("-k", "--keep-going"),
        {"action": "store_true", "help": "keep running independent tasks after a failure"},
    ),
    (("--json",), {"action": "store_true", "help": "print the plan or result as JSON"}),
    (
        ("--max-cost",),
        {
            "type": _usd,
            "metavar": "USD",
            "help": "refuse a build estimated above USD; stop launching once it would pass",
        },
    ),
)


def _epilog() -> str:
    lines = ["run options (ssmake [run] [TARGET...] OPTIONS):"]
    for flags, options in RUN_OPTIONS:
        name = ", ".join(flags) + (f" {options['metavar']}" if "metavar" in options else "")
        lines.append(f"  {name:<22}{options['help']}")
    lines += [
        "",
        "commands: " + ", ".join(COMMANDS) + " (default: run). See 'ssmake COMMAND --help'.",
        'Shell completion: eval "$(ssmake completion bash)" (or zsh).',
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from ssmake.ui.width import help_formatter
    from ssmake.version import __version__

    parser = argparse.ArgumentParser(
        prog="ssmake",
        description="make for SageMaker training jobs: run only the tasks whose code, "
        "image, inputs or parameters changed, upstream first.",
        epilog=_epilog(),
        formatter_class=help_formatter(argparse.RawDescriptionHelpFormatter),
    )
    parser.add_argument("--version", action="version", version=f"ssmake {__version__}")
    _common(parser, top=True)
    formatter = help_formatter(argparse.HelpFormatter)

    class Subparser(argparse.ArgumentParser):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", formatter)
            super().__init__(**kwargs)

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Subparser)

    run = sub.add_parser("run", help="build targets and what they need (the default)")
    _common(run)
    run.add_argument("targets", nargs="*", metavar="TARGET", help="tasks to build")
    for flags, options in RUN_OPTIONS:
        run.add_argument(*flags, **options)

    status = sub.add_parser("status", help="every task: up to date, stale (why) or running")
    _common(status)
    status.add_argument("targets", nargs="*", metavar="TARGET")
    status.add_argument("--json", action="store_true", help="print the states as JSON")
    status.add_argument(
        "--cost",
        action="store_true",
        help="what the current results cost, and what rebuilding the stale tasks would",
    )

    explain = sub.add_parser("explain", help="what changed since a task's last run")
    _common(explain)
    explain.add_argument("task")

    graph = sub.add_parser("graph", help="print the task graph")
    _common(graph)
    graph.add_argument(
        "--format",
        choices=("text", "dot", "mermaid", "svg", "png", "names"),
        default="text",
        help="svg and png need graphviz's dot; names: one task per line",
    )
    graph.add_argument(
        "-o", "--output", metavar="FILE", help="where svg or png go (default: graph.FORMAT)"
    )

    logs = sub.add_parser("logs", help="print the logs of a task's latest job")
    _common(logs)
    logs.add_argument("task")
    logs.add_argument("-F", "--follow", action="store_true", help="follow a running job")
    logs.add_argument("--job", metavar="NAME", help="another job of the task")

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
    _common(init)

    gc = sub.add_parser("gc", help="free the store of job results nothing refers to")
    _common(gc)
    gc.add_argument(
        "--keep",
        type=int,
        default=3,
        metavar="N",
        help="keep each task's N most recent runs (default 3); its marker's job always stays",
    )
    gc.add_argument(
        "-n", "--dry-run", action="store_true", help="say what would go; remove nothing"
    )

    cancel = sub.add_parser("cancel", help="stop a task's running job")
    _common(cancel)
    cancel.add_argument("task")

    completion = sub.add_parser("completion", help="print a bash or zsh completion script")
    completion.add_argument("shell", choices=("bash", "zsh"))
    # Commands cannot import cli: the script is generated from the parser handed down.
    completion.set_defaults(parser=parser)
    return parser


def _command_at(args: Sequence[str]) -> int:
    """Where the command would be: after the global options given before it."""
    i = 0
    while i < len(args):
        token = args[i]
        if token in GLOBAL_VALUES:
            i += 2
        elif token in GLOBAL_FLAGS or token.startswith(("--file=", "--backend=", "-C", "-f")):
            i += 1
        elif token.startswith("-") and len(token) > 2 and set(token[1:]) <= {"v", "q"}:
            i += 1  # -vv
        else:
            break
    return i


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser()
    args = list(argv)
    at = _command_at(args)
    if at == len(args) or args[at] not in (*COMMANDS, "-h", "--help", "--version"):
        args.insert(at, "run")
    return parser.parse_args(args)


def _command(name: str) -> Handler:
    """The `run` of ssmake/commands/NAME.py, imported on the first call: `import
    ssmake.cli` stays cheap, and each command loads only what it uses."""

    def handler(args: argparse.Namespace) -> int:
        run: Handler = importlib.import_module(f"ssmake.commands.{name}").run
        return run(args)

    return handler


HANDLERS: dict[str, Handler] = {name: _command(name) for name in COMMANDS}


def _quick_check(argv: Sequence[str]) -> bool:
    """Whether this is a plain `ssmake [-C DIR] [run] --check` that the snapshot of
    the last all-up-to-date plan answers (plan/quick.py): then nothing else loads."""
    args = list(argv)
    directory = "."
    if "-C" in args[:-1]:
        at = args.index("-C")
        directory = args[at + 1]
        del args[at : at + 2]
    if args not in (["--check"], ["run", "--check"]):
        return False
    from ssmake.plan.quick import up_to_date

    return up_to_date(directory)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ssmake command line; returns the exit code."""
    if argv is not None:
        return _main(argv)
    code = _main(sys.argv[1:])
    # The process ends next: what it made is freed by the interpreter's teardown
    # either way, and frozen, no garbage collection walks it first (15 -> 5 ms).
    gc.freeze()
    return code


def _main(argv: Sequence[str]) -> int:
    if _quick_check(argv):
        return EXIT_OK
    try:
        args = _parse(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 2
    received: list[int] = []
    previous = terminate_like_ctrl_c(received)
    try:
        code = _handle(args)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received and code == EXIT_INTERRUPTED:
        print(f"ssmake: stopped by {signal.Signals(received[0]).name}", file=sys.stderr)
        return 128 + received[0]
    return code


def _handle(args: argparse.Namespace) -> int:
    try:
        code = HANDLERS[args.command](args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return quiet_broken_pipe()
    except SsmakeError as e:
        print(f"ssmake: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ssmake: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            "ssmake: internal error (a bug in ssmake): please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
