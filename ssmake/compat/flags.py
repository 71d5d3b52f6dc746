"""The flags of simple-sagemaker's `ssm` command: its argparse parser.

Every flag of simple-sagemaker's `ssm` is accepted with its names, short forms,
defaults and meaning, plus ssmake's --backend and --store; `ssmake.compat.mapping`
turns what they parse into a task.
"""

from __future__ import annotations

import argparse

from ssmake.errors import ConfigError
from ssmake.project.names import BACKEND_NAMES, DISTRIBUTIONS, FRAMEWORKS
from ssmake.ui.width import help_formatter

TYPE_CHECKING = False  # not typing's: `ssm --help` loads this module
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

__all__ = ["DOWNLOAD_FLAGS", "PROG", "UsageError", "build_parser"]

PROG = "ssm"
DOWNLOAD_FLAGS = ("model", "output", "state")


class UsageError(ConfigError):
    """The command line itself is wrong (exit code 2)."""


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
        formatter_class=help_formatter(argparse.ArgumentDefaultsHelpFormatter),
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
