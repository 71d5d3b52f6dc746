"""Load an Ssmfile into the task model, validating everything before anything runs.

Every problem is collected and reported in one ConfigError, one per line, most
important first: unknown keys (a typo often explains the rest), then bad
values, then references between tasks, then files missing on disk:

    Ssmfile.toml:12: tasks.train.inputs.data.distribution: 'Sharded' is not one of ...

Each task is built from its table by `task_table`; this module reads the file,
the `[project]` table, and checks the references between tasks.
"""

from __future__ import annotations

import errno
import graphlib
import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ssmake.errors import ConfigError
from ssmake.project import matrix, schema
from ssmake.project.model import Project, Task
from ssmake.project.names import BACKEND_NAMES
from ssmake.project.paths import check_output_paths
from ssmake.project.task_table import TASK_KEYS, Ref, task_from_table
from ssmake.project.tomlpos import KeyPath, Locator
from ssmake.project.wiring import wire

__all__ = ["SSMFILE", "Locator", "build_task", "load_project"]

SSMFILE = "Ssmfile.toml"
# How deep arrays and tables may nest in an Ssmfile (a hyperparameter's value).
MAX_DEPTH = 32

TOP_KEYS = ("project", "defaults", "tasks")
PROJECT_KEYS = ("name", "backend", "store", "region", "default", "prices")

_TOML_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def load_project(
    root: Path, ssmfile: Path | None = None, *, max_expansions: int = matrix.MAX_EXPANSIONS
) -> Project:
    """Read and validate `root/Ssmfile.toml` (or `ssmfile`), a task with a matrix
    expanded into a task per combination (at most `max_expansions` of them).

    Raises ConfigError listing every problem found, one per line.
    """
    path = root / SSMFILE if ssmfile is None else ssmfile
    source = _display_name(path)
    text = _read(path, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(_syntax_error(source, text, error)) from None
    except RecursionError:
        raise ConfigError(
            f"{source}: arrays or tables nested too deeply to read; "
            f"an Ssmfile needs at most {MAX_DEPTH} levels: flatten it"
        ) from None

    issues = schema.Issues(Locator(text, source))
    _check_strings_and_depth(issues, data)
    issues.raise_if_any()  # the checks below walk values recursively
    issues.unknown_keys(data, TOP_KEYS, ())
    settings = _project_settings(issues, data.get("project", {}), root)
    defaults = schema.check_table(issues, data.get("defaults", {}), ("defaults",)) or {}
    for key in (k for k in matrix.MATRIX_KEYS if k in defaults):
        issues.invalid(("defaults", key), f"{key} belongs to a task: move it to [tasks.NAME]")
    defaults = {k: v for k, v in defaults.items() if k not in matrix.MATRIX_KEYS}
    issues.unknown_keys(defaults, TASK_KEYS, ("defaults",))
    tables = schema.check_table(issues, data.get("tasks", {}), ("tasks",))
    if tables == {}:
        issues.invalid(("tasks",), "no tasks defined: add a [tasks.NAME] table")

    tasks: dict[str, Task] = {}
    refs: dict[str, list[Ref]] = {}
    for name, value in (tables or {}).items():
        table = schema.check_table(issues, value, ("tasks", name))
        if table is None:
            continue
        expanded = matrix.expand(issues, name, table, defaults, limit=max_expansions)
        for values, own, under in expanded:
            full = matrix.expansion_name(name, values) if values else name
            task, refs[name] = task_from_table(full, own, under, root, issues, values)
            if task is not None:
                tasks[full] = task
    names = list(tables or {})
    defaults_refs = [
        Ref(("project", "default"), matrix.group_of(target)) for target in settings["default"]
    ]
    _check_references(issues, [defaults_refs, *refs.values()], names)
    _check_cycles(issues, refs, names)
    if not issues.items:
        tasks = wire(issues, tasks)
        check_output_paths(issues, root, tasks, settings["store"])
    issues.raise_if_any()
    sha = hashlib.sha256(text.encode()).hexdigest()
    return Project(root=root.resolve(), ssmfile=path, tasks=tasks, ssmfile_sha256=sha, **settings)


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
    task, _ = task_from_table(name, table, defaults, root, issues)
    issues.raise_if_any()
    assert task is not None  # built whenever no issue was found
    return task


def _display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop
        return str(path)


def _check_strings_and_depth(issues: schema.Issues, data: Mapping[str, Any]) -> None:
    """No key or string holds a NUL (no file name, argument or AWS API takes one), and
    nothing is nested deeper than MAX_DEPTH. Iterative: the depth is unbounded."""
    # (the key holding the value, how deep the value is, the value): an array's
    # items are reported at the array's key.
    stack: list[tuple[KeyPath, int, Any]] = [((), 0, data)]
    while stack:
        path, depth, value = stack.pop()
        if depth > MAX_DEPTH:
            issues.invalid(path, f"nested more than {MAX_DEPTH} levels deep; flatten it")
        elif isinstance(value, str) and "\0" in value:
            issues.invalid(
                path, "contains a NUL character (\\u0000), which nothing takes; remove it"
            )
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if "\0" in key:
                    where = (*path, key.replace("\0", "\\u0000"))
                    issues.invalid(where, "the key contains a NUL character (\\u0000); remove it")
                else:
                    stack.append(((*path, key), depth + 1, item))
        elif isinstance(value, list):
            stack.extend((path, depth + 1, item) for item in value)


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
    except IsADirectoryError:
        raise ConfigError(
            f"{source}: is a directory, not an Ssmfile; name the file with -f FILE"
        ) from None
    except OSError as error:
        why = "a symlink loop" if error.errno == errno.ELOOP else error.strerror
        raise ConfigError(
            f"{source}: cannot read it ({why}); fix it or name another with -f FILE"
        ) from None


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
    if name is not None and (not schema.NAME.fullmatch(name) or name == "cache"):
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
    if "prices" in table:
        prices = schema.check_string(issues, table["prices"], (*path, "prices"))
        if prices is not None and not (root / prices).is_file():
            message = f"{prices!r} not found; create the JSON file of prices or fix the path"
            issues.add(schema.ON_DISK, (*path, "prices"), message)
        settings["prices"] = prices
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
        if not schema.S3_URI.fullmatch(store):
            issues.invalid(path, f"{store!r} is not an S3 URI; write s3://BUCKET[/PREFIX]")
    elif backend == "sagemaker" and store:
        hint = "write s3://BUCKET[/PREFIX], or remove it for the account's default bucket"
        issues.invalid(path, f"the sagemaker backend needs an S3 store; {hint}")


def _check_references(issues: schema.Issues, refs: Iterable[list[Ref]], names: list[str]) -> None:
    for task_refs in refs:
        for ref in task_refs:
            if ref.task not in names:
                hint = schema.did_you_mean(ref.task, names, "tasks are")
                issues.add(schema.REFERENCE, ref.path, f"unknown task {ref.task!r}; {hint}")


def _check_cycles(issues: schema.Issues, refs: Mapping[str, list[Ref]], names: list[str]) -> None:
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
