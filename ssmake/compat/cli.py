"""The `ssm` command: simple-sagemaker's command line, one task, on the ssmake engine.

Every flag of simple-sagemaker's `ssm` is accepted with its names, short forms,
defaults and meaning; any other `--NAME VALUE` pair is a hyperparameter. The
flags become one task (validated by the same rules as an Ssmfile's
`[tasks.NAME]`) in a project of that one task, built like `ssmake` builds: a
task whose fingerprint matches its last completed run is not run again.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ssmake.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    SsmakeError,
)
from ssmake.project.model import BACKEND_NAMES, DISTRIBUTIONS, FRAMEWORKS, TASK_OUTPUTS, Task

__all__ = ["SsmOptions", "UsageError", "build_parser", "main", "task_from_args"]

PROG = "ssm"
SHORT_USAGE = (
    "usage: ssm -p PROJECT_NAME -t TASK_NAME -e ENTRY_POINT [FLAG ...] [--NAME VALUE ...] "
    "(ssm -h lists the flags)"
)

# Where each Ssmfile key of the task comes from, to name the flag in an error.
KEY_FLAGS = {
    "source_dir": "-s/--source_dir",
    "entry_point": "-e/--entry_point",
    "dependencies": "-d/--dependencies",
    "requirements": "the requirements.txt in -s/--source_dir",
    "dockerfile": "--df/--docker_file_path",
    "image": "--ar/--rn/--image_tag",
    "instance_type": "--it/--instance_type",
    "instance_count": "--ic/--instance_count",
    "volume_size": "-v/--volume_size",
    "spot": "--use_spot/--no_spot",
    "max_wait_mins": "--max_wait_mins",
    "max_run_mins": "--max_run_mins",
    "framework": "-f/--framework",
    "framework_version": "--fv/--framework_version",
    "python_version": "--pv/--python_version",
    "hyperparameters": "hyperparameter",
    "metrics": "--md/--metric_definitions",
    "enable_metrics": "-m/--enable_sagemaker_metrics",
    "tags": "--tag",
    "download": "--download_model/--download_output/--download_state",
    "output_path": "-o/--output_path",
}
DOWNLOAD_FLAGS = ("model", "output", "state")
INPUT_DATA = "data"  # the -i channel: the worker's args.input_data


class UsageError(ConfigError):
    """The command line itself is wrong (exit code 2)."""


@dataclass(frozen=True)
class SsmOptions:
    """What the flags say besides the task: where and how to run it."""

    backend: str
    #: The store address: a directory, `s3://bucket[/prefix]`, or "" for the
    #: account's default bucket.
    store: str
    force_running: bool = False
    clean_state: bool = False
    warnings: tuple[str, ...] = ()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _InputAction(argparse.Action):
    """`FIELD... [DISTRIBUTION]`, kept as a list of tuples (the flag may repeat)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        self.fields: tuple[str, ...] = kwargs.pop("fields")
        self.repeat: bool = kwargs.pop("repeat")
        super().__init__(option_strings, dest, nargs="+", **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        given = [str(v) for v in (values or [])]
        shape = " ".join(self.fields) + " [DISTRIBUTION]"
        if len(given) not in (len(self.fields), len(self.fields) + 1):
            raise argparse.ArgumentError(self, f"expected {shape}, got {' '.join(given)!r}")
        if len(given) == len(self.fields):
            given.append("FullyReplicated")
        elif given[-1] not in DISTRIBUTIONS:
            raise argparse.ArgumentError(
                self,
                f"distribution {given[-1]!r} is not one of {', '.join(DISTRIBUTIONS)} "
                f"(expected {shape})",
            )
        current: list[tuple[str, ...]] = list(getattr(namespace, self.dest) or [])
        if current and not self.repeat:
            raise argparse.ArgumentError(
                self, "can be given once; add more inputs with --iis NAME URI or --iit"
            )
        current.append(tuple(given))
        setattr(namespace, self.dest, current)


def build_parser() -> argparse.ArgumentParser:
    """The parser of simple-sagemaker's `ssm` flags, plus --backend and --store."""
    parser = _Parser(
        prog=PROG,
        description="Run one training job task through ssmake "
        "(simple-sagemaker's command line): a task already completed with the same "
        "code, image, inputs and parameters is not run again.",
        epilog="Any other --NAME VALUE pair is passed to the job as hyperparameter NAME "
        "(numbers and true/false as such, anything else as a string), e.g. --epochs 10.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,  # an abbreviation would swallow a hyperparameter (--task 1)
    )
    parser.add_argument("--project_name", "-p", required=True, help="Project name.")
    parser.add_argument("--task_name", "-t", required=True, help="Task name.")

    code = parser.add_argument_group("Code")
    code.add_argument(
        "--source_dir",
        "-s",
        help="Path (absolute or relative) to a directory with any other source code "
        "dependencies aside from the entry point file; its structure is preserved, and "
        "a requirements.txt in it is installed before the job runs.",
    )
    code.add_argument(
        "--entry_point",
        "-e",
        required=True,
        help="Path (absolute or relative) to the local Python source file which should be "
        "executed as the entry point. If source_dir is specified, then entry_point must "
        "point to a file located at the root of source_dir.",
    )
    code.add_argument(
        "--dependencies",
        "-d",
        nargs="+",
        help="Paths (absolute or relative) to directories with any other training source "
        "code dependencies, packed beside the entry point.",
    )

    instance = parser.add_argument_group("Instance")
    instance.add_argument(
        "--instance_type", "--it", default="ml.m5.large", help="Type of EC2 instance to use."
    )
    instance.add_argument(
        "--instance_count", "--ic", type=int, default=1, help="Number of EC2 instances to use."
    )
    instance.add_argument(
        "--volume_size",
        "-v",
        type=int,
        default=30,
        help="Size in GB of the EBS volume to use for storing input data. "
        "Must be large enough to store input data.",
    )
    instance.add_argument(
        "--no_spot", dest="use_spot", action="store_false", help="Use on demand instances"
    )
    instance.add_argument(
        "--use_spot",
        dest="use_spot",
        action="store_true",
        help="Specifies whether to use SageMaker Managed Spot instances.",
    )
    instance.set_defaults(use_spot=True)
    instance.add_argument(
        "--max_wait_mins",
        type=int,
        default=0,
        metavar="MAX_WAIT",
        help="Timeout in minutes waiting for spot instances. If 0 is specified and spot "
        "instances are used, its set to max_run_mins",
    )
    instance.add_argument(
        "--max_run_mins",
        type=int,
        default=1440,
        metavar="MAX_RUN",
        help="Timeout in minutes for running. After this amount of time the job is "
        "terminated regardless of its current status.",
    )

    image = parser.add_argument_group("Image")
    image.add_argument("--aws_repo", "--ar", help="Name of ECS repository.")
    image.add_argument("--repo_name", "--rn", help="Name of local repository.")
    image.add_argument("--image_tag", default="latest", help="Image tag.")
    image.add_argument(
        "--docker_file_path",
        "--df",
        help="Path to a directory containing the DockerFile (FROM __BASE_IMAGE__ is "
        "replaced with the framework image)",
    )
    image.add_argument(
        "--framework",
        "-f",
        choices=FRAMEWORKS,
        default="pytorch",
        help="The framework to use, see https://github.com/aws/deep-learning-containers/"
        "blob/master/available_images.md",
    )
    image.add_argument("--framework_version", "--fv", help="The framework version")
    image.add_argument("--python_version", "--pv", help="The python version")

    running = parser.add_argument_group("Running")
    running.add_argument(
        "--force_running",
        action="store_true",
        help="Force running the task even if its already completed.",
    )
    running.add_argument(
        "--tag",
        nargs=2,
        action="append",
        metavar=("key", "value"),
        help="Tag to be attached to the jobs executed for this task.",
    )

    io = parser.add_argument_group("I/O")
    io.add_argument(
        "--bucket_name",
        "-b",
        help="S3 bucket name (a default one is used if not given); the store of the "
        "sagemaker backend.",
    )
    io.add_argument(
        "--input_path",
        "-i",
        action=_InputAction,
        fields=("PATH",),
        repeat=False,
        help="Input: path [distribution] Local/s3 path for the input data (channel 'data', "
        "args.input_data in the worker). A local path is synced to the task's folder in "
        "the store before launching the task.",
    )
    io.add_argument(
        "--input_s3",
        "--iis",
        action=_InputAction,
        fields=("NAME", "URI"),
        repeat=True,
        help="S3Input: input_name, s3_uri [distribution] Additional S3 input sources (a few "
        "can be given); args.input_<name> in the worker. A local path is synced like -i.",
    )
    io.add_argument(
        "--input_task",
        "--iit",
        action=_InputAction,
        fields=("NAME", "TASK", "TYPE"),
        repeat=True,
        help="TaskInput: input_name, task_name, type [distribution] Use an output (model, "
        "output or state) of a completed task in the same project as an input source (a few "
        "can be given).",
    )
    io.add_argument(
        "--clean_state",
        "--cs",
        action="store_true",
        help="Clear the task state before running it. The task will be running again even "
        "if it was already completed before.",
    )
    io.add_argument(
        "--keep_state",
        "--ks",
        dest="clean_state",
        action="store_false",
        help="Keep the current task state. If the task is already completed, its current "
        "output will be taken without running it again.",
    )
    io.add_argument(
        "--metric_definitions",
        "--md",
        nargs=2,
        action="append",
        metavar=("name", "regexp"),
        help="Name and regexp for a metric definition, a few can be given. See "
        "https://docs.aws.amazon.com/sagemaker/latest/dg/training-metrics.html.",
    )
    io.add_argument(
        "--enable_sagemaker_metrics",
        "-m",
        action="store_true",
        help="Enables SageMaker Metrics Time Series.",
    )

    download = parser.add_argument_group("Download")
    download.add_argument(
        "--output_path",
        "-o",
        help="Local path to download the outputs to (the logs always, to OUTPUT_PATH/logs).",
    )
    for kind in DOWNLOAD_FLAGS:
        download.add_argument(
            f"--download_{kind}",
            action="store_true",
            help=f"Download the {kind} once task is finished (to OUTPUT_PATH/{kind})",
        )

    ssmake = parser.add_argument_group("ssmake")
    ssmake.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        help="What runs the job: this machine, or SageMaker "
        "(default: $SSMAKE_BACKEND, else sagemaker)",
    )
    ssmake.add_argument(
        "--store",
        help="Where state, inputs and results live: a directory or s3://BUCKET[/PREFIX] "
        "(default: s3://BUCKET_NAME on sagemaker, .ssmake in the working directory on local)",
    )
    return parser


def task_from_args(
    argv: Sequence[str], *, root: Path | None = None
) -> tuple[str, Task, SsmOptions]:
    """The project name, task and options an `ssm` command line stands for.

    Validates the task like an Ssmfile's `[tasks.NAME]`; with `root` (the working
    directory the paths are relative to), the files it names must exist there.
    Raises UsageError (exit code 2) naming the flag that is wrong.
    """
    args_list = list(argv)
    if args_list[:1] == ["run"]:  # later simple-sagemaker versions: `ssm run ...`
        args_list = args_list[1:]
    parser = build_parser()
    args, extras = parser.parse_known_args(args_list)
    # Imported once parsed, so that `ssm -h` stays instant.
    from ssmake.api import default_backend
    from ssmake.compat.project import relative_entry_point
    from ssmake.project.load import build_task

    warnings: list[str] = []
    hyperparameters = _hyperparameters(extras, parser, warnings)
    backend = args.backend or default_backend()
    store = args.store
    if store is None:
        if backend == "sagemaker":
            store = f"s3://{args.bucket_name.removeprefix('s3://')}" if args.bucket_name else ""
        else:
            store = ".ssmake"
            if args.bucket_name:
                warnings.append(
                    f"-b {args.bucket_name} is the store of the sagemaker backend; "
                    "on the local backend the store is .ssmake (use --store to choose)"
                )

    downloads = [kind for kind in DOWNLOAD_FLAGS if getattr(args, f"download_{kind}")]
    if downloads and not args.output_path:
        flags = " ".join(f"--download_{kind}" for kind in downloads)
        raise UsageError(f"{flags}: needs -o/--output_path, the directory to download into")

    table: dict[str, Any] = {
        "entry_point": relative_entry_point(args.entry_point, args.source_dir),
        "instance_type": args.instance_type,
        "instance_count": args.instance_count,
        "volume_size": args.volume_size,
        "spot": args.use_spot,
        "max_wait_mins": args.max_wait_mins,
        "max_run_mins": args.max_run_mins,
        "framework": args.framework,
        "hyperparameters": hyperparameters,
        "enable_metrics": args.enable_sagemaker_metrics,
    }
    optional = {
        "source_dir": args.source_dir,
        "dependencies": args.dependencies,
        "dockerfile": args.docker_file_path,
        "framework_version": args.framework_version,
        "python_version": args.python_version,
        "output_path": args.output_path,
        "metrics": _pairs(args.metric_definitions, "--md", "metric"),
        "tags": _pairs(args.tag, "--tag", "tag"),
    }
    table.update({key: value for key, value in optional.items() if value})
    image = {"repo": args.aws_repo, "local_repo": args.repo_name, "tag": args.image_tag}
    table["image"] = {key: value for key, value in image.items() if value}
    if args.output_path:
        table["download"] = [*downloads, "logs"]
    inputs, channel_flags = _inputs(args)
    if inputs:
        table["inputs"] = inputs

    try:
        task = build_task(args.task_name, table, root=root)
    except ConfigError as error:
        lines = [
            _flag_message(line, args.task_name, channel_flags)
            for line in error.message.splitlines()
        ]
        raise UsageError("\n".join(lines)) from None
    options = SsmOptions(
        backend=backend,
        store=store,
        force_running=args.force_running,
        clean_state=args.clean_state,
        warnings=tuple(warnings),
    )
    return args.project_name, task, options


def _pairs(pairs: list[list[str]] | None, flag: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs or []:
        if key in out and out[key] != value:
            raise UsageError(f"{flag} {key}: this {what} is given twice, with different values")
        out[key] = value
    return out


def _inputs(args: argparse.Namespace) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The inputs table (as in an Ssmfile) and the flag that made each channel."""
    from ssmake.compat.project import input_location

    inputs: dict[str, dict[str, str]] = {}
    flags: dict[str, str] = {}

    def add(name: str, spec: dict[str, str], flag: str) -> None:
        if name in inputs:
            raise UsageError(f"{flag}: input {name!r} is already given by {flags[name]}")
        inputs[name] = spec
        flags[name] = flag

    for path, distribution in args.input_path or []:
        add(INPUT_DATA, {**input_location(path), "distribution": distribution}, f"-i {path}")
    for name, uri, distribution in args.input_s3 or []:
        add(name, {**input_location(uri), "distribution": distribution}, f"--iis {name}")
    for name, task, output, distribution in args.input_task or []:
        if output not in TASK_OUTPUTS:
            raise UsageError(
                f"--iit {name} {task} {output}: the type is one of {', '.join(TASK_OUTPUTS)}"
            )
        spec = {"task": task, "output": output, "distribution": distribution}
        add(name, spec, f"--iit {name}")
    return inputs, flags


def _hyperparameters(
    extras: list[str], parser: argparse.ArgumentParser, warnings: list[str]
) -> dict[str, object]:
    """`--name value` (or `--name=value`) pairs; numbers and booleans keep their type."""
    known = sorted(
        option.lstrip("-")
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--")
    )
    hyperparameters: dict[str, object] = {}
    i = 0
    while i < len(extras):
        token = extras[i]
        if not token.startswith("--") or token == "--":
            hint = "" if token.startswith("-") else "; hyperparameters are --NAME VALUE pairs"
            raise UsageError(f"unrecognized argument: {token}{hint}")
        name, equals, value = token[2:].partition("=")
        if equals:
            i += 1
        elif i + 1 < len(extras) and not extras[i + 1].startswith("--"):
            value = extras[i + 1]
            i += 2
        else:
            raise UsageError(
                f"{token} is not an ssm flag, and as a hyperparameter it needs a value: "
                f"{token} VALUE (see ssm -h)"
            )
        if not name:
            raise UsageError(f"{token}: a hyperparameter needs a name: --NAME VALUE")
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if close:
            warnings.append(
                f"--{name} is not an ssm flag (did you mean --{close[0]}?); "
                f"it is passed to the job as hyperparameter {name!r}"
            )
        hyperparameters[name] = _scalar(value)
    return hyperparameters


def _scalar(text: str) -> object:
    """`1` -> 1, `0.5` -> 0.5, `true` -> True; anything else stays a string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value)):
        return value
    return text


def _flag_message(line: str, task: str, channel_flags: dict[str, str]) -> str:
    """Reword a validation message about an Ssmfile key as one about its flag."""
    from ssmake.project.tomlpos import format_key

    base = format_key(("tasks", task))
    if line.startswith(base + ": "):
        return "-t/--task_name: " + line[len(base) + 2 :]
    for channel, flag in channel_flags.items():
        prefix = format_key(("tasks", task, "inputs", channel))
        if line.startswith(prefix):
            _, _, message = line[len(prefix) :].partition(": ")
            return f"{flag}: {message}"
    if line.startswith(base + "."):
        path, _, message = line[len(base) + 1 :].partition(": ")
        key, _, sub = path.partition(".")
        flag = KEY_FLAGS.get(key, key)
        if sub:
            sub = sub.strip('"')
            flag = f"hyperparameter --{sub}" if key == "hyperparameters" else f"{flag} {sub}"
        return f"{flag}: {message}"
    return line


# -- running ------------------------------------------------------------------


def run(argv: Sequence[str]) -> int:
    """Parse `argv`, build its task, and say how it ended on stdout."""
    root = Path.cwd()
    project_name, task, options = task_from_args(argv, root=root)
    # After parsing: `ssm --help` and flag errors need none of the engine.
    from ssmake.api import Project

    for warning in options.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    project = Project.from_tasks(
        project_name, [task], root=root, backend=options.backend, store=options.store
    )
    if options.clean_state:
        removed = project.clean_state(task.name)
        print(f"{PROG}: {task.name}: state cleared ({removed} files)", file=sys.stderr)
    force = options.force_running or options.clean_state
    (outcome,) = project.build([task.name], force=force)
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
        traceback.print_exc()
        print(
            f"{PROG}: internal error (a bug in ssmake): please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
