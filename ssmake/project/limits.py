"""What SageMaker would reject in a task, found at load time so that a mistake
costs nothing: lengths, counts and characters of names, hyperparameters, tags,
environment and metric definitions, and the ranges of the numbers. The numbers
come from botocore's service model (`sagemaker_limits`, generated); ssmake's own
entries (its hyperparameters, tags and environment variable) count against them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from ssmake.project import schema
from ssmake.project.sagemaker_limits import LIMITS
from ssmake.project.tomlpos import KeyPath

# What ssmake adds to every job: sagemaker_program, _submit_directory,
# _container_log_level, _job_name and _region; a distribution adds up to 3 more.
OWN_HYPERPARAMETERS = 5
DISTRIBUTION_HYPERPARAMETERS = 3
OWN_TAGS = 3  # ssmake:project, ssmake:task, ssmake:fingerprint
OWN_ENVIRONMENT = 1  # SSM_STATE_DIR
# `-<fingerprint[:10]>-<attempt>` after the task's name in its jobs' names, with
# room for 999 attempts.
JOB_SUFFIX = len("-0123456789-999")
# The model's integers are 32-bit; it gives no maximum for these.
INT32_MAX = 2**31 - 1
# Not in the model: "the maximum time that a training job can run is 28 days"
# (StoppingCondition in the SageMaker API reference).
MAX_RUNTIME_SECONDS = 28 * 24 * 3600


def check_task_name(issues: schema.Issues, name: str, path: KeyPath) -> None:
    longest = LIMITS["job_name"]["max"] - JOB_SUFFIX
    if name.startswith("-"):
        fixed = name.lstrip("-") or "train"
        issues.invalid(
            path,
            f"task name {name!r} begins with '-' (read as an option); rename it, like {fixed!r}",
        )
    elif len(name) > longest:
        issues.invalid(
            path,
            f"task name {name!r} has {len(name)} characters; at most {longest} fit in a "
            f"SageMaker job name (<task>-<fingerprint>-<attempt>, {LIMITS['job_name']['max']} "
            "characters): shorten it",
        )


def check_task(
    issues: schema.Issues, fields: Mapping[str, Any], paths: Mapping[str, KeyPath]
) -> None:
    """Everything about one task's values that CreateTrainingJob would refuse."""
    _hyperparameters(issues, fields, paths)
    own_env = OWN_ENVIRONMENT
    _map(issues, fields.get("environment", {}), paths.get("environment"), "environment", own_env)
    _map(issues, fields.get("tags", {}), paths.get("tags"), "tags", OWN_TAGS)
    for key, value in fields.get("tags", {}).items():
        where = (*paths["tags"], key)
        for what, text in (("key", key), ("value", value)):
            bad = _outside_class(text, LIMITS[f"tag_{what}"]["pattern"])
            if bad is not None:
                allowed = "letters, digits, spaces and _ . : / = + - @"
                issues.invalid(where, f"tag {what} has {bad!r}, which AWS refuses; use {allowed}")
    _map(issues, fields.get("metrics", {}), paths.get("metrics"), "metrics", 0)
    for name, maximum, unit in (
        ("instance_count", INT32_MAX, ""),
        ("volume_size", INT32_MAX, " GB"),
        ("max_run_mins", MAX_RUNTIME_SECONDS // 60, " minutes (28 days)"),
        ("max_wait_mins", INT32_MAX // 60, " minutes"),
    ):
        value = fields.get(name)
        if isinstance(value, int) and value > maximum:
            issues.invalid(paths[name], f"must be at most {maximum}{unit}, got {value}")


def _hyperparameters(
    issues: schema.Issues, fields: Mapping[str, Any], paths: Mapping[str, KeyPath]
) -> None:
    values: Mapping[str, object] = fields.get("hyperparameters", {})
    if not values:
        return
    path = paths["hyperparameters"]
    own = OWN_HYPERPARAMETERS + (DISTRIBUTION_HYPERPARAMETERS if fields.get("distribution") else 0)
    _map(issues, {k: json.dumps(v) for k, v in values.items()}, path, "hyperparameters", own)
    seen: dict[str, str] = {}
    for name in values:
        where = (*path, name)
        if name.startswith("sagemaker_"):
            issues.invalid(where, "names starting with 'sagemaker_' are SageMaker's own; rename it")
        # The job finds hyperparameter NAME in SM_HP_<NAME upper-cased> too.
        if (other := seen.setdefault(name.upper(), name)) != name:
            clash = f"both are SM_HP_{name.upper()} to the job"
            issues.invalid(where, f"{name!r} clashes with {other!r} ({clash}); rename one")


# How the Ssmfile calls each map: the limits of its count, keys and values.
_MAPS = {
    "hyperparameters": ("hyperparameters", "hyperparameter_key", "hyperparameter_value"),
    "environment": ("environment", "environment_key", "environment_value"),
    "tags": ("tags", "tag_key", "tag_value"),
    "metrics": ("metrics", "metric_name", "metric_regex"),
}


def _map(
    issues: schema.Issues, table: Mapping[str, str], path: KeyPath | None, name: str, own: int
) -> None:
    if not table or path is None:
        return
    count, key_limits, value_limits = (LIMITS[n] for n in _MAPS[name])
    most = count["max"] - own
    if len(table) > most:
        mine = f" (ssmake adds {own} of its own)" if own else ""
        issues.invalid(path, f"{len(table)} entries; SageMaker takes at most {most}{mine}")
    for key, value in table.items():
        for what, text, limits in (("name", key, key_limits), ("value", value, value_limits)):
            low, high = limits.get("min", 0), limits.get("max")
            if high is not None and len(text) > high:
                issues.invalid(
                    (*path, key),
                    f"{what} has {len(text)} characters; SageMaker takes at most {high}",
                )
            elif len(text) < low:
                issues.invalid((*path, key), f"{what} must not be empty")


_PROPERTY = re.compile(r"\\p\{(\w)\}|\\(.)|(.)", re.S)


def _outside_class(text: str, pattern: str) -> str | None:
    """The first character of `text` outside the character class of `pattern` (a Java
    regex like `([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)`), or None."""
    body = pattern[pattern.index("[") + 1 : pattern.rindex("]")]
    categories, literal = set(), set()
    for prop, escaped, plain in _PROPERTY.findall(body):
        if prop:
            categories.add(prop)
        else:
            literal.add(escaped or plain)
    for char in text:
        if char not in literal and unicodedata.category(char)[0] not in categories:
            return char
    return None
