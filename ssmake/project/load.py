"""Load an Ssmfile into the task model, validating everything before anything runs.

Every problem is collected and reported in one ConfigError, one per line, most
important first: unknown keys (a typo often explains the rest), then bad
values, then references between tasks, then files missing on disk:

    Ssmfile.toml:12: tasks.train.inputs.data.distribution: 'Sharded' is not one of ...

`[defaults]` holds task keys inherited by every task. A task's own value wins;
the tables hyperparameters, environment, tags and metrics are merged key by key
with the task's entries on top, other values (image and inputs included) are
replaced whole.
"""

from __future__ import annotations

import dataclasses
import graphlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from ssmake.errors import ConfigError
from ssmake.project import schema
from ssmake.project.model import (
    BACKEND_NAMES,
    COMMANDS,
    DISTRIBUTIONS,
    TASK_OUTPUTS,
    Image,
    Input,
    Project,
    Task,
)
from ssmake.project.tomlpos import KeyPath, Locator

__all__ = ["SSMFILE", "SUBCOMMANDS", "TASK_KEYS", "Locator", "build_task", "load_project"]

SSMFILE = "Ssmfile.toml"

# Task names that would read as a subcommand on the command line.
SUBCOMMANDS = frozenset({*COMMANDS, "help"})

TOP_KEYS = ("project", "defaults", "tasks")
PROJECT_KEYS = ("name", "backend", "store", "region", "default")
# The Task fields a user writes; `dockerfile_content` is for the Python API only.
TASK_KEYS = tuple(
    field.name
    for field in dataclasses.fields(Task)
    if field.name not in ("name", "dockerfile_content")
)
IMAGE_KEYS = ("repo", "local_repo", "tag", "uri")
INPUT_KEYS = ("path", "s3", "task", "output", "distribution")
INPUT_SOURCES = ("path", "s3", "task")

_NAME = re.compile(r"[A-Za-z0-9-]+")
_CHANNEL = re.compile(r"[A-Za-z0-9._-]{1,64}")
_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")
_TOML_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def load_project(root: Path, ssmfile: Path | None = None) -> Project:
    """Read and validate `root/Ssmfile.toml` (or `ssmfile`).

    Raises ConfigError listing every problem found, one per line.
    """
    path = root / SSMFILE if ssmfile is None else ssmfile
    source = _display_name(path)
    text = _read(path, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(_syntax_error(source, text, error)) from None

    issues = schema.Issues(Locator(text, source))
    issues.unknown_keys(data, TOP_KEYS, ())
    settings = _project_settings(issues, data.get("project", {}), root)
    defaults = schema.check_table(issues, data.get("defaults", {}), ("defaults",)) or {}
    issues.unknown_keys(defaults, TASK_KEYS, ("defaults",))
    tables = schema.check_table(issues, data.get("tasks", {}), ("tasks",))
    if tables == {}:
        issues.invalid(("tasks",), "no tasks defined: add a [tasks.NAME] table")

    tasks: dict[str, Task] = {}
    refs: dict[str, list[_Ref]] = {}
    for name, value in (tables or {}).items():
        table = schema.check_table(issues, value, ("tasks", name))
        if table is not None:
            task, refs[name] = _task_from_table(name, table, defaults, root, issues)
            if task is not None:
                tasks[name] = task
    names = list(tables or {})
    defaults_refs = [_Ref(("project", "default"), target) for target in settings["default"]]
    _check_references(issues, [defaults_refs, *refs.values()], names)
    _check_cycles(issues, refs, names)
    issues.raise_if_any()
    return Project(root=root.resolve(), ssmfile=path, tasks=tasks, **settings)


def build_task(
    name: str,
    table: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] = _EMPTY,
    where: Locator | None = None,
    root: Path | None = None,
) -> Task:
    """Validate one task's keys (as in `[tasks.NAME]`) over `defaults` and build it.

    With `root`, the files it names are checked on disk too, and a requirements.txt
    in source_dir is picked up. References to other tasks are not checked (only a
    whole project knows them); depending on itself is.
    """
    issues = schema.Issues(where)
    task, _ = _task_from_table(name, table, defaults, root, issues)
    issues.raise_if_any()
    assert task is not None  # built whenever no issue was found
    return task


@dataclass(frozen=True)
class _Ref:
    """A reference to another task, and the key that makes it."""

    path: KeyPath
    task: str


def _display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _read(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: not found; create one with 'ssmake init' or name yours with -f FILE"
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{source}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
        ) from None
    except OSError as error:
        raise ConfigError(f"{source}: cannot read it: {error.strerror}") from None


def _syntax_error(source: str, text: str, error: tomllib.TOMLDecodeError) -> str:
    message = str(error)
    at = _TOML_AT.search(message)
    what = _TOML_AT.sub("", message)
    if at is None:
        place = source
    elif at[1] is None:
        place = f"{source}:{text.count(chr(10)) + 1}"
    else:
        place = f"{source}:{at[1]}:{at[2]}"
    return f"{place}: invalid TOML: {what}; fix the syntax there (see https://toml.io)"


# Values: each check reports what is wrong and returns the value, or None if unusable.


# Tasks


def _task_from_table(
    name: str,
    table: Mapping[str, Any],
    defaults: Mapping[str, Any],
    root: Path | None,
    issues: schema.Issues,
) -> tuple[Task | None, list[_Ref]]:
    """Build a task, or None if it has issues; and its references to other tasks."""
    base: KeyPath = ("tasks", name)
    before = len(issues.items)
    _check_task_name(issues, name, base)
    issues.unknown_keys(table, TASK_KEYS, base)
    issues.unknown_keys(defaults, TASK_KEYS, ("defaults",))

    # Where each key's value comes from: the task, else [defaults].
    given: dict[str, tuple[Any, KeyPath]] = {}
    for source, path in ((defaults, ("defaults",)), (table, base)):
        given.update({key: (value, (*path, key)) for key, value in source.items()})
    fields: dict[str, Any] = {"name": name}
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

    refs: list[_Ref] = []
    if "inputs" in given:
        fields["inputs"] = _inputs(issues, *given["inputs"], root, refs)
    refs.extend(_Ref(given["after"][1], upstream) for upstream in fields.get("after", ()))
    for ref in refs:
        if ref.task == name:
            issues.add(
                schema.REFERENCE, ref.path, "a task cannot depend on itself; remove this reference"
            )
    refs = [ref for ref in refs if ref.task != name]

    paths = {key: path for key, (_, path) in given.items()}
    if "entry_point" not in given:
        issues.invalid(
            (*base, "entry_point"), 'missing; add entry_point = "train.py", the script the job runs'
        )
    _check_limits(issues, fields, paths)
    if root is not None:
        _check_files(issues, root, fields, paths)
    if len(issues.items) > before:
        return None, refs
    return Task(**fields), refs


def _check_task_name(issues: schema.Issues, name: str, path: KeyPath) -> None:
    if not _NAME.fullmatch(name):
        suggestion = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-") or "train"
        hint = f"use only letters, digits and '-', like {suggestion!r}"
        issues.invalid(path, f"bad task name {name!r}; {hint}")
    elif name in SUBCOMMANDS:
        issues.invalid(path, f"task name {name!r} is an ssmake subcommand; rename the task")


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
    issues: schema.Issues, value: Any, path: KeyPath, root: Path | None, refs: list[_Ref]
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
    refs: list[_Ref],
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
    if kind == "s3" and not _S3_URI.fullmatch(value):
        issues.invalid(where, f"{value!r} is not an S3 URI; write s3://BUCKET/KEY")
    elif kind == "task":
        refs.append(_Ref(where, value))
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


# The project


def _project_settings(issues: schema.Issues, value: Any, root: Path) -> dict[str, Any]:
    path: KeyPath = ("project",)
    table = schema.check_table(issues, value, path) or {}
    issues.unknown_keys(table, PROJECT_KEYS, path)
    settings: dict[str, Any] = {}
    if "name" in table:
        name = schema.check_string(issues, table["name"], (*path, "name"))
        origin = "project name"
    else:
        name = root.resolve().name
        origin = "the directory name, the default project name,"
    if name is not None and (not _NAME.fullmatch(name) or name == "cache"):
        suggestion = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")
        if suggestion in ("", "cache"):
            suggestion = f"{suggestion}-project".lstrip("-")
        why = "is reserved" if name == "cache" else "may use only letters, digits and '-'"
        fix = f'set name = "{suggestion}" in [project]'
        issues.invalid((*path, "name"), f"{origin} {name!r} {why}; {fix}")
    settings["name"] = name
    backend = "local"
    if "backend" in table:
        backend = (
            schema.check_choice(issues, table["backend"], (*path, "backend"), allowed=BACKEND_NAMES)
            or ""
        )
    settings["backend"] = backend
    # "" on sagemaker: the account's default bucket, resolved by the backend.
    store = "" if backend == "sagemaker" else ".ssmake"
    if "store" in table:
        store = schema.check_string(issues, table["store"], (*path, "store"), empty=True) or store
        _check_store(issues, store, backend, (*path, "store"))
    settings["store"] = store
    if "region" in table:
        settings["region"] = schema.check_string(issues, table["region"], (*path, "region"))
    if "default" in table:
        default = schema.check_strings(issues, table["default"], (*path, "default"))
        if default == ():
            issues.invalid((*path, "default"), "an empty list builds nothing; remove the key")
        settings["default"] = default or ()
    else:
        settings["default"] = ()
    return settings


def _check_store(issues: schema.Issues, store: str, backend: str, path: KeyPath) -> None:
    if store.startswith("s3:") or "://" in store:
        if not _S3_URI.fullmatch(store):
            issues.invalid(path, f"{store!r} is not an S3 URI; write s3://BUCKET[/PREFIX]")
    elif backend == "sagemaker" and store:
        hint = "write s3://BUCKET[/PREFIX], or remove it for the account's default bucket"
        issues.invalid(path, f"the sagemaker backend needs an S3 store; {hint}")


def _check_references(issues: schema.Issues, refs: Iterable[list[_Ref]], names: list[str]) -> None:
    for task_refs in refs:
        for ref in task_refs:
            if ref.task not in names:
                hint = schema.did_you_mean(ref.task, names, "tasks are")
                issues.add(schema.REFERENCE, ref.path, f"unknown task {ref.task!r}; {hint}")


def _check_cycles(issues: schema.Issues, refs: Mapping[str, list[_Ref]], names: list[str]) -> None:
    """Report each dependency cycle once, starting from its task that comes first in the file."""
    needs: dict[str, dict[str, KeyPath]] = {name: {} for name in names}
    for name, task_refs in refs.items():
        for ref in task_refs:
            if ref.task in needs:
                needs[name].setdefault(ref.task, ref.path)
    position = {name: index for index, name in enumerate(names)}
    while True:
        try:
            graphlib.TopologicalSorter({name: list(up) for name, up in needs.items()}).prepare()
            return
        except graphlib.CycleError as error:
            # Each node of the cycle is needed by the next one.
            nodes: list[str] = error.args[1][:-1]
            start = min(range(len(nodes)), key=lambda index: position[nodes[index]])
            cycle = nodes[start:] + nodes[:start]
            first, last = cycle[0], cycle[-1]
            shown = " -> ".join([*cycle, first])
            hint = "each task needs the one before it; remove one of these dependencies"
            issues.add(schema.REFERENCE, needs[first][last], f"cycle: {shown} ({hint})")
            del needs[first][last]
