"""simple-sagemaker's parameters, and the ssmake tasks they stand for.

`SageMakerProject` keeps its defaults in the named tuples below; a
`buildOrGetImage` or `runTask` call becomes a task table (as in an Ssmfile's
`[tasks.NAME]`), validated by the same rules. `input_location` and
`relative_entry_point` read an input or an entry point as simple-sagemaker
takes them, for `ssm`'s flags too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from ssmake.errors import ConfigError
from ssmake.project.load import build_task
from ssmake.project.model import Task

__all__ = [
    "CodeParams",
    "ImageParams",
    "InstanceParams",
    "image_task",
    "input_location",
    "relative_entry_point",
    "run_task",
]

IMAGE_TASK = "image"  # the task buildOrGetImage resolves an image for


class CodeParams(NamedTuple):
    """What a task runs: see `SageMakerProject.setDefaultCodeParams`."""

    source_dir: str | None = None
    entry_point: str | None = None
    dependencies: tuple[str, ...] = ()


class InstanceParams(NamedTuple):
    """Where a task runs: see `SageMakerProject.setDefaultInstanceParams`."""

    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    volume_size: int = 30
    use_spot_instances: bool = True
    max_run_mins: int = 1440
    max_wait_mins: int = 0


class ImageParams(NamedTuple):
    """The image a task runs in: see `SageMakerProject.setDefaultImageParams`."""

    aws_repo_name: str | None = None
    repo_name: str | None = None
    image_tag: str = "latest"
    docker_file_path_or_content: str | None = None
    framework: str = "pytorch"
    framework_version: str | None = None
    python_version: str | None = None


def image_task(params: ImageParams, instance_type: str, root: Path) -> Task:
    """The task `buildOrGetImage` resolves an image for: `params` on `instance_type`."""
    table: dict[str, Any] = {"entry_point": "-", "instance_type": instance_type}
    content = _image_fields(table, params, root)
    task = build_task(IMAGE_TASK, table)
    if content is not None:
        task = replace(task, dockerfile_content=content)
    return task


def run_task(
    name: str,
    code: CodeParams,
    instance: InstanceParams,
    image: ImageParams | str,
    root: Path,
    *,
    hyperparameters: dict[str, object],
    input_data_path: str | os.PathLike[str] | None,
    distribution: str,
    additional_inputs: dict[str, Any],
    tags: dict[str, str],
    metrics: dict[str, str],
    enable_metrics: bool,
) -> Task:
    """The task `runTask(name, ...)` runs: its code, instances, image (params, or a
    URI used as is) and inputs, with paths relative to `root`."""
    if code.entry_point is None:
        raise ConfigError(
            f"runTask({name!r}): no entry point; call setDefaultCodeParams(entry_point=...)"
        )
    table: dict[str, Any] = {
        "entry_point": relative_entry_point(str(code.entry_point), code.source_dir),
        "dependencies": [str(d) for d in code.dependencies],
        "instance_type": instance.instance_type,
        "instance_count": instance.instance_count,
        "volume_size": instance.volume_size,
        "spot": instance.use_spot_instances,
        "max_run_mins": instance.max_run_mins,
        "max_wait_mins": instance.max_wait_mins,
        "hyperparameters": hyperparameters,
        "tags": tags,
        "metrics": metrics,
        "enable_metrics": enable_metrics,
    }
    if code.source_dir is not None:
        table["source_dir"] = str(code.source_dir)
    content = None
    if isinstance(image, str):
        table["image"] = {"uri": image}
    else:
        content = _image_fields(table, image, root)
    inputs: dict[str, Any] = {}
    if input_data_path is not None:
        inputs["data"] = {**input_location(str(input_data_path)), "distribution": distribution}
    for channel, spec in additional_inputs.items():
        inputs[channel] = _input_table(channel, spec)
    if inputs:
        table["inputs"] = inputs
    task = build_task(name, table, root=root)
    return task if content is None else replace(task, dockerfile_content=content)


def _image_fields(table: dict[str, Any], params: ImageParams, root: Path) -> str | None:
    """Put the image params into a task table; returns a Dockerfile's content, if any."""
    table["framework"] = params.framework
    for key, value in (
        ("framework_version", params.framework_version),
        ("python_version", params.python_version),
    ):
        if value is not None:
            table[key] = value
    dockerfile = params.docker_file_path_or_content
    if dockerfile is None:
        return None
    image = {"repo": params.aws_repo_name, "local_repo": params.repo_name}
    table["image"] = {k: v for k, v in image.items() if v} | {"tag": params.image_tag}
    if "\n" not in dockerfile and (root / dockerfile).is_dir():
        table["dockerfile"] = dockerfile
        return None
    if "FROM" not in dockerfile.upper():
        raise ConfigError(
            f"docker_file_path_or_content {dockerfile!r} is neither a directory with a "
            "Dockerfile nor a Dockerfile's content (with a FROM __BASE_IMAGE__ line)"
        )
    return dockerfile


def relative_entry_point(entry: str, source_dir: str | None) -> str:
    """The entry point as ssmake names it: relative to `source_dir` when given.

    simple-sagemaker also takes an absolute path to a file in `source_dir`.
    """
    if source_dir is not None and Path(entry).is_absolute():
        try:
            return Path(entry).resolve().relative_to(Path(source_dir).resolve()).as_posix()
        except ValueError:
            pass
    return entry


def input_location(value: str) -> dict[str, str]:
    """An input given as simple-sagemaker takes one, an S3 URI or a local path,
    as an Ssmfile inputs entry (a local path is synced to the store)."""
    return {"s3": value} if value.startswith("s3://") else {"path": value}


def _input_table(channel: str, spec: Any) -> Any:
    """An additional input as an Ssmfile inputs entry."""
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, str | os.PathLike):
        return input_location(str(spec))
    # A sagemaker.inputs.TrainingInput, as simple-sagemaker scripts may pass.
    config = getattr(spec, "config", None)
    if isinstance(config, Mapping):
        source = config.get("DataSource", {}).get("S3DataSource", {})
        if "S3Uri" in source:
            distribution = source.get("S3DataDistributionType", "FullyReplicated")
            return {"s3": source["S3Uri"], "distribution": distribution}
    raise ConfigError(
        f"additional_inputs[{channel!r}]: expected getInputConfig(...), an S3 URI or a "
        f"local path, got {type(spec).__name__}"
    )
