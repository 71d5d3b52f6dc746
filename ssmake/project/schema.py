"""Checking the values of an Ssmfile: each checker takes a value and its key path,
records what is wrong in `Issues`, and returns the value in its model type (or
None). `load` and `task_table` build the project with them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from ssmake.errors import ConfigError
from ssmake.project.model import DISTRIBUTION_STRATEGIES
from ssmake.project.names import COMPLETIONS, DOWNLOAD_KINDS, FRAMEWORKS
from ssmake.project.tomlpos import KeyPath, Locator, format_key

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HP_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_INSTANCE_TYPE = re.compile(r"ml\.[a-z0-9-]+\.[a-z0-9]+")
# What a task or project name, and an S3 address (an input, the store), look like.
NAME = re.compile(r"[A-Za-z0-9-]+")
S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")

# How an issue ranks in the report, most important first.
UNKNOWN, INVALID, REFERENCE, ON_DISK = range(4)


@dataclass(frozen=True)
class Issue:
    rank: int
    path: KeyPath
    message: str


class Issues:
    def __init__(self, where: Locator | None) -> None:
        self.where = where
        self.items: list[Issue] = []

    def add(self, rank: int, path: KeyPath, message: str) -> None:
        self.items.append(Issue(rank, path, message))

    def invalid(self, path: KeyPath, message: str) -> None:
        self.add(INVALID, path, message)

    def unknown_keys(self, table: Mapping[str, Any], allowed: Sequence[str], path: KeyPath) -> None:
        for key in table:
            if key not in allowed:
                hint = did_you_mean(key, allowed, "allowed keys are")
                self.add(UNKNOWN, (*path, key), f"unknown key; {hint}")

    def raise_if_any(self) -> None:
        ordered = sorted(self.items, key=lambda issue: issue.rank)
        # Defaults are checked once per task: report each problem once.
        lines = dict.fromkeys(self.format(issue) for issue in ordered)
        if lines:
            raise ConfigError("\n".join(lines))

    def format(self, issue: Issue) -> str:
        text = f"{format_key(issue.path)}: {issue.message}" if issue.path else issue.message
        if self.where is None:
            return text
        line = self.where.line(issue.path)
        place = self.where.source if line is None else f"{self.where.source}:{line}"
        return f"{place}: {text}"


def did_you_mean(word: str, choices: Iterable[str], listing: str) -> str:
    options = list(choices)
    import difflib  # only for a message

    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"{listing}: {', '.join(options)}" if options else f"{listing}: none"


def kind_of(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"{'integer' if isinstance(value, int) else 'float'} {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"{type(value).__name__} {value}"


def check_string(issues: Issues, value: Any, path: KeyPath, *, empty: bool = False) -> str | None:
    if isinstance(value, str):
        if value or empty:
            return value
        issues.invalid(path, "must not be empty")
        return None
    hint = f'; quote it: "{value}"' if isinstance(value, int | float) else ""
    issues.invalid(path, f"expected a string, got {kind_of(value)}{hint}")
    return None


def check_integer(issues: Issues, value: Any, path: KeyPath, *, minimum: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        digits = isinstance(value, str) and value.strip().lstrip("-").isdigit()
        hint = "; remove the quotes" if digits else ""
        issues.invalid(path, f"expected an integer, got {kind_of(value)}{hint}")
        return None
    if value < minimum:
        issues.invalid(path, f"must be at least {minimum}, got {value}")
        return None
    return value


def check_boolean(issues: Issues, value: Any, path: KeyPath) -> bool | None:
    if isinstance(value, bool):
        return value
    issues.invalid(path, f"expected a boolean (true or false, unquoted), got {kind_of(value)}")
    return None


def check_choice(
    issues: Issues, value: Any, path: KeyPath, *, allowed: Sequence[str]
) -> str | None:
    text = check_string(issues, value, path)
    if text is not None and text not in allowed:
        issues.invalid(path, f"{text!r} is not one of {', '.join(allowed)}")
        return None
    return text


def check_table(issues: Issues, value: Any, path: KeyPath) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    issues.invalid(path, f"expected a table, got {kind_of(value)}")
    return None


def check_strings(issues: Issues, value: Any, path: KeyPath) -> tuple[str, ...] | None:
    if not isinstance(value, list | tuple):
        hint = f'; write ["{value}"]' if isinstance(value, str) else ""
        issues.invalid(path, f"expected an array of strings, got {kind_of(value)}{hint}")
        return None
    good = True
    for number, item in enumerate(value, 1):
        if not isinstance(item, str) or not item:
            issues.invalid(path, f"item {number}: expected a non-empty string, got {kind_of(item)}")
            good = False
    return tuple(value) if good else None


def check_string_map(issues: Issues, value: Any, path: KeyPath) -> dict[str, str] | None:
    table = check_table(issues, value, path)
    if table is None:
        return None
    strings = {
        key: check_string(issues, item, (*path, key), empty=True) for key, item in table.items()
    }
    return {key: item for key, item in strings.items() if item is not None}


def check_instance_type(issues: Issues, value: Any, path: KeyPath) -> str | None:
    text = check_string(issues, value, path)
    if text is not None and not _INSTANCE_TYPE.fullmatch(text):
        issues.invalid(path, f"{text!r} is not a SageMaker instance type, like 'ml.m5.large'")
        return None
    return text


def check_download(issues: Issues, value: Any, path: KeyPath) -> tuple[str, ...] | None:
    kinds = check_strings(issues, value, path)
    if kinds is None:
        return None
    bad = [kind for kind in kinds if kind not in DOWNLOAD_KINDS]
    for kind in bad:
        issues.invalid(path, f"{kind!r} is not one of {', '.join(DOWNLOAD_KINDS)}")
    return None if bad else tuple(dict.fromkeys(kinds))


def check_output_path(issues: Issues, value: Any, path: KeyPath) -> str | None:
    text = check_string(issues, value, path)
    if text is not None and PurePosixPath(text).as_posix() in ("/", ".", ".."):
        issues.invalid(path, f"{text!r} would replace the project itself: name a subdirectory")
        return None
    return text


def check_hyperparameters(issues: Issues, value: Any, path: KeyPath) -> dict[str, object] | None:
    table = check_table(issues, value, path)
    if table is None:
        return None
    good: dict[str, object] = {}
    for key, item in table.items():
        if not _HP_NAME.fullmatch(key):
            issues.invalid(
                (*path, key),
                "a hyperparameter name is passed as --NAME: use letters, digits, '_', '-', '.'",
            )
        where = _not_json(item)
        if where is not None:
            hint = "a string, number, boolean, array or table of those"
            issues.invalid((*path, key), f"expected {hint}, got {where}")
            continue
        # A table or array reaches the job JSON-encoded, as the SageMaker SDK sends it.
        good[key] = _plain(item)
    return good


def _not_json(value: Any) -> str | None:
    """What in `value` has no JSON form (a TOML date or time), or None."""
    if isinstance(value, str | int | float):
        return None
    if isinstance(value, list | tuple):
        return next((w for item in value if (w := _not_json(item)) is not None), None)
    if isinstance(value, Mapping):
        return next((w for item in value.values() if (w := _not_json(item)) is not None), None)
    return f"{type(value).__name__} {value}"


def _plain(value: Any) -> object:
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def check_metrics(issues: Issues, value: Any, path: KeyPath) -> dict[str, str] | None:
    table = check_string_map(issues, value, path)
    for name, regex in (table or {}).items():
        try:
            groups = re.compile(regex).groups
        except re.error as error:
            issues.invalid((*path, name), f"regex {regex!r} does not compile: {error}")
            continue
        if groups == 0:
            hint = "capture the value in a group, like 'loss=(.*?);'"
            issues.invalid((*path, name), f"regex {regex!r} has no group; {hint}")
    return table


def check_environment(issues: Issues, value: Any, path: KeyPath) -> dict[str, str] | None:
    table = check_string_map(issues, value, path)
    for name in table or {}:
        if not _ENV_NAME.fullmatch(name):
            hint = "use letters, digits and '_', not starting with a digit"
            issues.invalid((*path, name), f"{name!r} is not an environment variable name; {hint}")
    return table


def check_tags(issues: Issues, value: Any, path: KeyPath) -> dict[str, str] | None:
    table = check_string_map(issues, value, path)
    for key in table or {}:
        if key.startswith(("ssmake:", "aws:")):
            issues.invalid((*path, key), "tag keys starting with 'ssmake:' or 'aws:' are reserved")
    return table


Check = Callable[[Issues, Any, KeyPath], Any]

_DISTRIBUTION_SETTINGS: dict[str, Check] = {
    "enabled": check_boolean,
    "processes_per_host": partial(check_integer, minimum=1),
    "custom_mpi_options": partial(check_string, empty=True),
}


def check_distribution(
    issues: Issues, value: Any, path: KeyPath
) -> dict[str, dict[str, object]] | None:
    """One strategy, as the SageMaker SDK's `distribution`: { torch_distributed =
    { enabled = true } }, { pytorchddp = ... } or { mpi = { enabled = true,
    processes_per_host = N, custom_mpi_options = "..." } }."""
    table = check_table(issues, value, path)
    if table is None:
        return None
    names = ", ".join(DISTRIBUTION_STRATEGIES)
    if len(table) != 1:
        issues.invalid(path, f"needs exactly one strategy, one of {names}")
        return None
    ((strategy, settings),) = table.items()
    where = (*path, strategy)
    if strategy not in DISTRIBUTION_STRATEGIES:
        hint = did_you_mean(strategy, DISTRIBUTION_STRATEGIES, "strategies are")
        issues.add(UNKNOWN, where, f"unknown strategy; {hint}")
        return None
    settings = check_table(issues, settings, where)
    if settings is None:
        return None
    issues.unknown_keys(settings, ("enabled", *DISTRIBUTION_STRATEGIES[strategy]), where)
    if "enabled" not in settings:
        issues.invalid((*where, "enabled"), "missing; add enabled = true")
        return None
    checked: dict[str, object] = {}
    for key, item in settings.items():
        check = _DISTRIBUTION_SETTINGS.get(key)
        if check is not None and (result := check(issues, item, (*where, key))) is not None:
            checked[key] = result
    return {strategy: checked}


CHECKS: dict[str, Check] = {
    "source_dir": check_string,
    "entry_point": check_string,
    "dependencies": check_strings,
    "requirements": check_string,
    "dockerfile": check_string,
    "instance_type": check_instance_type,
    "instance_count": partial(check_integer, minimum=1),
    "volume_size": partial(check_integer, minimum=1),
    "spot": check_boolean,
    "max_wait_mins": partial(check_integer, minimum=0),
    "max_run_mins": partial(check_integer, minimum=1),
    "framework": partial(check_choice, allowed=FRAMEWORKS),
    "framework_version": check_string,
    "python_version": check_string,
    "enable_metrics": check_boolean,
    "download": check_download,
    "output_path": check_output_path,
    "completion": partial(check_choice, allowed=COMPLETIONS),
    "after": check_strings,
    "local_docker": check_boolean,
    "distribution": check_distribution,
}


MERGED: dict[str, Check] = {
    "hyperparameters": check_hyperparameters,
    "environment": check_environment,
    "tags": check_tags,
    "metrics": check_metrics,
}
