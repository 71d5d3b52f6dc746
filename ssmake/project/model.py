"""The task model: plain, frozen data built from an Ssmfile (or from `ssm` flags).

Paths are kept as written, relative to the project root; the engine resolves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Distribution = Literal["FullyReplicated", "ShardedByS3Key"]
TaskOutput = Literal["model", "output", "state"]
Completion = Literal["job", "marked"]
DownloadKind = Literal["model", "output", "state", "logs"]

# The `distribution` strategies, as the SageMaker SDK's estimators name them, and
# the keys each takes besides `enabled`.
DISTRIBUTION_STRATEGIES: dict[str, tuple[str, ...]] = {
    "torch_distributed": (),
    "pytorchddp": (),
    "mpi": ("processes_per_host", "custom_mpi_options"),
}


@dataclass(frozen=True)
class Input:
    """One input channel of a task. Exactly one of path, s3 and task is set."""

    name: str
    path: str | None = None
    s3: str | None = None
    task: str | None = None
    output: TaskOutput = "model"
    distribution: Distribution = "FullyReplicated"
    # When `task` has a matrix this task does not share: every expansion it gathers.
    gather: tuple[str, ...] = ()
    # A local input's own exclusions (gitignore patterns, relative to its path):
    # no ignore file applies inside an input, its files are data.
    exclude: tuple[str, ...] = ()
    # Whether an empty local input (or one whose files are all excluded) is meant.
    allow_empty: bool = False

    @property
    def kind(self) -> Literal["path", "s3", "task"]:
        if self.path is not None:
            return "path"
        if self.s3 is not None:
            return "s3"
        return "task"


@dataclass(frozen=True)
class Image:
    """Where the job's image comes from: a framework image, a URI, or a Dockerfile build."""

    repo: str | None = None
    local_repo: str | None = None
    tag: str | None = None
    uri: str | None = None


@dataclass(frozen=True)
class Task:
    """One build step: a training job's code, image, inputs and parameters."""

    name: str
    entry_point: str
    source_dir: str | None = None
    dependencies: tuple[str, ...] = ()
    requirements: str | None = None
    dockerfile: str | None = None
    dockerfile_content: str | None = None
    image: Image = field(default_factory=Image)
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    volume_size: int = 30
    spot: bool = True
    max_wait_mins: int = 0
    max_run_mins: int = 1440
    framework: str = "pytorch"
    framework_version: str | None = None
    python_version: str | None = None
    inputs: tuple[Input, ...] = ()
    hyperparameters: dict[str, object] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    enable_metrics: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    download: tuple[DownloadKind, ...] = ()
    output_path: str | None = None
    completion: Completion = "job"
    after: tuple[str, ...] = ()
    local_docker: bool = False
    #: How instances train together, as the SDK's `distribution` argument: one
    #: strategy and its settings, like {"torch_distributed": {"enabled": True}}.
    distribution: dict[str, dict[str, object]] = field(default_factory=dict)
    # An expansion of a task's matrix: its values (empty for a task without one).
    matrix: dict[str, object] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """The task as written: `train` for the expansion `train[lr=0.1]`."""
        return self.name.partition("[")[0]

    def upstream(self) -> tuple[str, ...]:
        """Names of the tasks this one needs, data flow first, then `after`."""
        names: list[str] = []
        for i in self.inputs:
            if i.gather:
                names.extend(i.gather)
            elif i.task is not None:
                names.append(i.task)
        names.extend(self.after)
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Project:
    """A loaded Ssmfile: the project's settings and its tasks, in file order."""

    name: str
    root: Path
    ssmfile: Path
    backend: str = "local"
    store: str = ".ssmake"
    region: str | None = None
    default: tuple[str, ...] = ()
    # A JSON file of USD prices per instance-hour over the shipped table.
    prices: str | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    # Tasks of this project known only by their markers in the store, never run
    # from here: `ssm` defines one task, and the tasks it consumes ran before.
    external: tuple[str, ...] = ()
    # The sha256 of the Ssmfile's text this project was loaded from (None when it was
    # made otherwise): `ssmake --check`'s quick answer is only valid for that text.
    ssmfile_sha256: str | None = None
