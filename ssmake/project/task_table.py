"""One task's table (`[tasks.NAME]`, over `[defaults]`), checked and built into a Task.

`[defaults]` holds task keys inherited by every task. A task's own value wins;
the tables hyperparameters, environment, tags and metrics are merged key by key
with the task's entries on top, other values (image and inputs included) are
replaced whole. The files a task names are checked on disk when a root is
given; its references to other tasks are returned, for the whole project to
check.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from ssmake.project import limits, schema
from ssmake.project.matrix import group_of
from ssmake.project.model import Image, Input, Task
from ssmake.project.names import COMMANDS, DISTRIBUTIONS, TASK_OUTPUTS
from ssmake.project.tomlpos import KeyPath

# Task names that would read as a subcommand on the command line.
SUBCOMMANDS = frozenset({*COMMANDS, "help"})

# The Task fields a user writes; `dockerfile_content` is for the Python API only,
# and `matrix` (an expansion's values) comes from the task's matrix.
TASK_KEYS = tuple(
    field.name
    for field in dataclasses.fields(Task)
    if field.name not in ("name", "dockerfile_content", "matrix")
)
IMAGE_KEYS = ("repo", "local_repo", "tag", "uri")
INPUT_KEYS = ("path", "s3", "task", "output", "distribution", "exclude", "allow_empty")
INPUT_SOURCES = ("path", "s3", "task")

_CHANNEL = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NO_MATRIX: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True)
class Ref:
    """A reference to another task, and the key that makes it."""

    path: KeyPath
    task: str


def task_from_table(
    name: str,
    table: Mapping[str, Any],
    defaults: Mapping[str, Any],
    root: Path | None,
    issues: schema.Issues,
    matrix: Mapping[str, object] = _NO_MATRIX,
) -> tuple[Task | None, list[Ref]]:
    """Build a task, or None if it has issues; and its references to other tasks.
    An expansion of a matrix (`train[lr=0.1]`) is given its values, and its issues
    are reported at the keys of the task as written."""
    written = group_of(name)
    base: KeyPath = ("tasks", written)
    before = len(issues.items)
    _check_task_name(issues, written, base)
    issues.unknown_keys(table, TASK_KEYS, base)
    issues.unknown_keys(defaults, TASK_KEYS, ("defaults",))

    # Where each key's value comes from: the task, else [defaults].
    given: dict[str, tuple[Any, KeyPath]] = {}
    for source, path in ((defaults, ("defaults",)), (table, base)):
        given.update({key: (value, (*path, key)) for key, value in source.items()})
    fields: dict[str, Any] = {"name": name, "matrix": dict(matrix)}
    for key, check in schema.CHECKS.items():
        if key in given and (value := check(issues, *given[key])) is not None:
            fields[key] = value
    for key, check in schema.MERGED.items():
        merged: dict[str, Any] = {}
        for source, path in ((defaults, ("defaults",)), (table, base)):
            if key in source:
                merged.update(check(issues, source[key], (*path, key)) or {})
        fields[key] = merged
    building = "dockerfile" in given
    if "image" in given and (image := _image(issues, *given["image"], building)) is not None:
        fields["image"] = image

    refs: list[Ref] = []
    if "inputs" in given:
        fields["inputs"] = _inputs(issues, *given["inputs"], root, refs)
    refs.extend(Ref(given["after"][1], upstream) for upstream in fields.get("after", ()))
    for ref in refs:
        if ref.task == written:
            issues.add(
                schema.REFERENCE, ref.path, "a task cannot depend on itself; remove this reference"
            )
    refs = [ref for ref in refs if ref.task != written]

    paths = {key: path for key, (_, path) in given.items()}
    if "entry_point" not in given:
        issues.invalid(
            (*base, "entry_point"), 'missing; add entry_point = "train.py", the script the job runs'
        )
    _check_limits(issues, fields, paths)
    limits.check_task(issues, fields, paths)
    if root is not None:
        _check_files(issues, root, fields, paths)
    if len(issues.items) > before:
        return None, refs
    return Task(**fields), refs


def _check_task_name(issues: schema.Issues, name: str, path: KeyPath) -> None:
    if not schema.NAME.fullmatch(name):
        suggestion = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-") or "train"
        hint = f"use only letters, digits and '-', like {suggestion!r}"
        issues.invalid(path, f"bad task name {name!r}; {hint}")
    elif name in SUBCOMMANDS:
        issues.invalid(path, f"task name {name!r} is an ssmake subcommand; rename the task")
    else:
        limits.check_task_name(issues, name, path)


def _image(issues: schema.Issues, value: Any, path: KeyPath, building: bool) -> Image | None:
    """The image table; with a dockerfile, `uri` names the base it builds on."""
    table = schema.check_table(issues, value, path)
    if table is None:
        return None
    issues.unknown_keys(table, IMAGE_KEYS, path)
    strings = {
        key: schema.check_string(issues, table[key], (*path, key))
        for key in IMAGE_KEYS
        if key in table
    }
    fields = {key: value for key, value in strings.items() if value is not None}
    built = [key for key in ("repo", "local_repo", "tag") if key in fields]
    if "uri" in fields and built and not building:
        hint = f"{', '.join(built)} only apply to an image built from a dockerfile"
        issues.invalid(path, f"uri names a ready image; {hint}: keep one or the other")
    return Image(**fields)


def _inputs(
    issues: schema.Issues, value: Any, path: KeyPath, root: Path | None, refs: list[Ref]
) -> tuple[Input, ...]:
    table = schema.check_table(issues, value, path)
    seen: dict[str, str] = {}
    inputs: list[Input] = []
    for channel, spec in (table or {}).items():
        where = (*path, channel)
        if not _CHANNEL.fullmatch(channel):
            hint = "use at most 64 letters, digits, '.', '-' and '_'"
            issues.invalid(where, f"bad channel name {channel!r}; {hint}")
        # Workers find channel NAME in SM_CHANNEL_<NAME upper-cased>.
        if (other := seen.setdefault(channel.upper(), channel)) != channel:
            clash = f"both are SM_CHANNEL_{channel.upper()} to the job"
            issues.invalid(
                where, f"channel {channel!r} clashes with {other!r} ({clash}); rename one"
            )
        item = _input(issues, channel, spec, where, root, refs)
        if item is not None:
            inputs.append(item)
    return tuple(inputs)


def _input(
    issues: schema.Issues,
    channel: str,
    spec: Any,
    path: KeyPath,
    root: Path | None,
    refs: list[Ref],
) -> Input | None:
    shorthand = isinstance(spec, str)
    if isinstance(spec, str):
        looks_s3 = spec.startswith("s3:") or "://" in spec
        spec = {"s3": spec} if looks_s3 else {"path": spec}
    if not isinstance(spec, Mapping):
        issues.invalid(path, f"expected a table or a string, got {schema.kind_of(spec)}")
        return None
    issues.unknown_keys(spec, INPUT_KEYS, path)
    sources = [key for key in INPUT_SOURCES if key in spec]
    if len(sources) != 1:
        got = f", got {' and '.join(sources)}" if sources else ""
        issues.invalid(path, f"needs exactly one of path, s3 and task{got}")
        return None
    kind = sources[0]
    where = path if shorthand else (*path, kind)
    value = schema.check_string(issues, spec[kind], where)
    if value is None:
        return None
    fields: dict[str, Any] = {"name": channel, kind: value}
    if kind == "s3" and not schema.S3_URI.fullmatch(value):
        issues.invalid(where, f"{value!r} is not an S3 URI; write s3://BUCKET/KEY")
    elif kind == "task":
        refs.append(Ref(where, value))
    elif kind == "path" and root is not None and not (root / value).exists():
        issues.add(schema.ON_DISK, where, f"{value!r} not found; create it or fix the path")
    if "output" in spec and kind != "task":
        issues.invalid((*path, "output"), "only a task input has an output; remove it")
    elif "output" in spec:
        fields["output"] = schema.check_choice(
            issues, spec["output"], (*path, "output"), allowed=TASK_OUTPUTS
        )
    if "distribution" in spec:
        where = (*path, "distribution")
        fields["distribution"] = schema.check_choice(
            issues, spec["distribution"], where, allowed=DISTRIBUTIONS
        )
    for key, check in (("exclude", schema.check_strings), ("allow_empty", schema.check_boolean)):
        if key in spec and kind != "path":
            issues.invalid((*path, key), f"only a path input has {key}; remove it")
        elif key in spec:
            fields[key] = check(issues, spec[key], (*path, key))
    return Input(**{key: value for key, value in fields.items() if value is not None})


def _check_limits(
    issues: schema.Issues, fields: Mapping[str, Any], paths: Mapping[str, KeyPath]
) -> None:
    max_wait, max_run = fields.get("max_wait_mins", 0), fields.get("max_run_mins", 1440)
    if fields.get("spot", True) and 0 < max_wait < max_run:
        hint = "or 0 to wait as long as max_run_mins"
        message = f"must be at least max_run_mins ({max_run}) for a spot job, {hint}"
        issues.invalid(paths["max_wait_mins"], message)
    if fields.get("download") and "output_path" not in paths:
        issues.invalid(paths["download"], "needs output_path, the directory to download into")
    entry, source_dir = fields.get("entry_point"), fields.get("source_dir")
    if entry is not None and source_dir is not None:
        inner = PurePosixPath(entry)
        if inner.is_absolute() or ".." in inner.parts:
            message = f"must be a path inside source_dir {source_dir!r}, relative to it"
            issues.invalid(paths["entry_point"], message)


def _check_files(
    issues: schema.Issues, root: Path, fields: dict[str, Any], paths: Mapping[str, KeyPath]
) -> None:
    """Check that the files a task names exist; infer requirements from source_dir."""

    def missing(key: str, what: str) -> None:
        issues.add(schema.ON_DISK, paths[key], f"{what} not found; create it or fix the path")

    source_dir: str | None = fields.get("source_dir")
    if source_dir is not None and not (root / source_dir).is_dir():
        missing("source_dir", f"directory {source_dir!r}")
    elif (entry := fields.get("entry_point")) is not None:
        relative = PurePosixPath(source_dir or ".", entry)
        if not (root / relative).is_file():
            missing("entry_point", f"{str(relative)!r}")
        inferred = PurePosixPath(source_dir or ".", "requirements.txt")
        if source_dir and "requirements" not in paths and (root / inferred).is_file():
            fields["requirements"] = str(inferred)
    for dependency in fields.get("dependencies", ()):
        if not (root / dependency).exists():
            missing("dependencies", f"dependency {dependency!r}")
    requirements = fields.get("requirements")
    if "requirements" in paths and requirements and not (root / requirements).is_file():
        missing("requirements", f"file {requirements!r}")
    dockerfile = fields.get("dockerfile")
    if dockerfile is not None and not (root / dockerfile).is_dir():
        missing("dockerfile", f"directory {dockerfile!r}")
    elif dockerfile is not None and not (root / dockerfile / "Dockerfile").is_file():
        hint = "add one (FROM __BASE_IMAGE__) or fix the path"
        issues.add(schema.ON_DISK, paths["dockerfile"], f"no Dockerfile in {dockerfile!r}; {hint}")
