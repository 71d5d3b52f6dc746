"""An `ssm` command line as an ssmake task: simple-sagemaker's flags onto Ssmfile keys.

The parsed flags become one task, validated by the same rules as an Ssmfile's
`[tasks.NAME]`; any `--NAME VALUE` pair the parser does not know is a
hyperparameter. A validation error about an Ssmfile key is reworded to name
the flag that set it.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssmake.compat.flags import DOWNLOAD_FLAGS, UsageError, build_parser
from ssmake.errors import ConfigError
from ssmake.project.model import Task
from ssmake.project.names import TASK_OUTPUTS

__all__ = ["SsmOptions", "task_from_args"]

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
INPUT_DATA = "data"  # the -i channel: the worker's args.input_data


@dataclass(frozen=True)
class SsmOptions:
    """What the flags say besides the task: where and how to run it."""

    backend: str
    #: The store address: a directory, `s3://bucket[/prefix]`, or "" for the
    #: account's default bucket.
    store: str
    #: The backend came from no flag and no SSMAKE_BACKEND: SageMaker, ssm's default.
    default_backend: bool = False
    force_running: bool = False
    clean_state: bool = False
    warnings: tuple[str, ...] = ()


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
    from ssmake.compat.params import relative_entry_point
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
        default_backend=not args.backend and not os.environ.get("SSMAKE_BACKEND", "").strip(),
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
    from ssmake.compat.params import input_location

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
