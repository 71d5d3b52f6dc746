"""Task matrices: a task written once and run over a grid of values.

`matrix = { lr = [0.1, 0.01], depth = [3, 5] }` expands a task into one task per
combination (less those `exclude` drops), each named `train[depth=3,lr=0.1]`
(keys sorted) and stored under a slug that SageMaker accepts in a job name.
Every expansion gets its values as hyperparameters, and `${matrix.KEY}` in the
task's strings is replaced by its value (a string that is only the placeholder
becomes the value itself, keeping its type).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ssmake.project import schema
from ssmake.project.tomlpos import KeyPath

Scalar = str | int | float | bool

# More combinations than this is more often a mistake than a sweep;
# --max-expansions raises it.
MAX_EXPANSIONS = 1000
# A job name is the slug, '-', 10 fingerprint characters, '-' and the attempt,
# in at most 63 characters: 48 leaves room for attempts up to 99.
SLUG_MAX = 48
_HASH_CHARS = 6

_KEY = re.compile(r"[A-Za-z0-9_-]+")
_RESERVED = re.compile(r"[\[\],=\s]")
_PLACEHOLDER = re.compile(r"\$\{matrix\.([^}]*)\}")
_NOT_SLUG = re.compile(r"[^A-Za-z0-9]+")
# Values of these tables are strings whatever the placeholder's type.
_TEXT_TABLES = ("environment", "tags", "metrics")

Matrix = dict[str, tuple[Scalar, ...]]


def same(a: object, b: object) -> bool:
    """Equal as TOML values: true is not 1, and 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def format_value(value: object) -> str:
    """A matrix value as it reads in a task's name: TOML's spelling of it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expansion_name(base: str, values: Mapping[str, object]) -> str:
    """`train[depth=3,lr=0.1]`: the task's name and its values, keys sorted."""
    inner = ",".join(f"{key}={format_value(values[key])}" for key in sorted(values))
    return f"{base}[{inner}]"


def group_of(name: str) -> str:
    """The task an expansion was written as: `train` for `train[lr=0.1]`."""
    return name.partition("[")[0]


def slug(name: str) -> str:
    """The name as store keys and SageMaker job names spell it: letters, digits
    and '-'. A plain task name is its own slug; an expansion's is readable
    (`train-depth-3-lr-0-1`), cut to SLUG_MAX with a short hash of the full name."""
    if "[" not in name:
        return name
    readable = _NOT_SLUG.sub("-", name).strip("-")
    if len(readable) <= SLUG_MAX:
        return readable
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_CHARS]
    return f"{readable[: SLUG_MAX - _HASH_CHARS - 1].rstrip('-')}-{digest}"


def parse_address(target: str) -> tuple[str, dict[str, str]] | None:
    """`train[lr=0.1]` as ("train", {"lr": "0.1"}); None when it is no such address."""
    base, bracket, rest = target.partition("[")
    if not bracket or not rest.endswith("]") or not base:
        return None
    wanted: dict[str, str] = {}
    for part in rest[:-1].split(","):
        key, equals, value = part.partition("=")
        if not equals or not key.strip():
            return None
        wanted[key.strip()] = value.strip()
    return base, wanted


def matches(values: Mapping[str, object], wanted: Mapping[str, str]) -> bool:
    """Whether an expansion's values agree with every `KEY=VALUE` of an address
    (numbers compare as numbers: lr=0.10 is lr=0.1)."""
    for key, text in wanted.items():
        if key not in values:
            return False
        value = values[key]
        if format_value(value) == text:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        try:
            if float(text) != value:
                return False
        except ValueError:
            return False
    return True


# Expanding


MATRIX_KEYS = ("matrix", "exclude")


def expand(
    issues: schema.Issues,
    name: str,
    table: Mapping[str, Any],
    defaults: Mapping[str, Any],
    *,
    limit: int = MAX_EXPANSIONS,
) -> list[tuple[dict[str, Scalar], dict[str, Any], dict[str, Any]]]:
    """Each expansion of a task as (its values, its table, the defaults under it),
    placeholders replaced and values added to the hyperparameters. A task without
    a matrix is one expansion with no values."""
    path: KeyPath = ("tasks", name)
    plain = {key: value for key, value in table.items() if key not in MATRIX_KEYS}
    if "matrix" not in table:
        if "exclude" in table:
            issues.invalid(
                (*path, "exclude"), "drops combinations of a matrix: add one or remove it"
            )
        return [
            (
                {},
                substitute(issues, plain, path, None),
                substitute(issues, defaults, ("defaults",), None),
            )
        ]
    matrix = check_matrix(issues, table["matrix"], (*path, "matrix"), limit=limit)
    if matrix is None:
        return []
    exclude: list[dict[str, Scalar]] = []
    if "exclude" in table:
        exclude = check_exclude(issues, table["exclude"], (*path, "exclude"), matrix)
    combos = combinations(matrix, exclude)
    if not combos:
        issues.invalid((*path, "exclude"), "excludes every combination; the task would not run")
    for source, where in ((defaults, ("defaults",)), (table, path)):
        given = source.get("hyperparameters")
        for key in matrix:
            if isinstance(given, Mapping) and key in given:
                issues.invalid(
                    (*where, "hyperparameters", key),
                    f"{key} is a matrix key of tasks.{name}, which sets it for each "
                    "expansion; remove one of the two",
                )
    out: list[tuple[dict[str, Scalar], dict[str, Any], dict[str, Any]]] = []
    for values in combos:
        expanded = substitute(issues, plain, path, values)
        hyperparameters = expanded.get("hyperparameters", {})
        if isinstance(hyperparameters, Mapping):
            expanded["hyperparameters"] = {**hyperparameters, **values}
        out.append((values, expanded, substitute(issues, defaults, ("defaults",), values)))
    return out


# Checking


def check_matrix(issues: schema.Issues, value: Any, path: KeyPath, *, limit: int) -> Matrix | None:
    """The matrix table: each key a list of distinct scalars."""
    table = schema.check_table(issues, value, path)
    if table is None:
        return None
    if not table:
        issues.invalid(path, "an empty matrix expands to nothing; give it a key or remove it")
        return None
    matrix: Matrix = {}
    for key, items in table.items():
        where = (*path, key)
        if not _KEY.fullmatch(key):
            issues.invalid(
                where, "a matrix key is a hyperparameter name: use letters, digits, '_', '-'"
            )
            continue
        if not isinstance(items, list):
            hint = f"; write [{_toml(items)}]" if _is_scalar(items) else ""
            issues.invalid(where, f"expected an array of values, got {schema.kind_of(items)}{hint}")
            continue
        if not items:
            issues.invalid(where, "an empty array expands to nothing; give it values")
            continue
        good: list[Scalar] = []
        for number, item in enumerate(items, 1):
            if not _is_scalar(item):
                got = schema.kind_of(item)
                issues.invalid(
                    where, f"item {number}: expected a string, number or boolean, got {got}"
                )
            elif isinstance(item, str) and (not item or _RESERVED.search(item)):
                issues.invalid(
                    where,
                    f"item {number}: {item!r}: a matrix string must be non-empty, "
                    "without spaces, '[', ']', ',' or '=' (it is part of the task's name)",
                )
            elif any(same(item, seen) for seen in good):
                issues.invalid(where, f"item {number}: {_toml(item)} is listed twice; remove one")
            else:
                good.append(item)
        if len(good) == len(items):
            matrix[key] = tuple(good)
    if len(matrix) != len(table):
        return None
    total = 1
    for items in matrix.values():
        total *= len(items)
    if total > limit:
        issues.invalid(
            path,
            f"{total} combinations, more than the limit of {limit}; shrink the matrix "
            f"or raise the limit with --max-expansions {total}",
        )
        return None
    return matrix


def check_exclude(
    issues: schema.Issues, value: Any, path: KeyPath, matrix: Matrix
) -> list[dict[str, Scalar]]:
    """`exclude = [{ lr = 0.1, depth = 5 }]`: each entry drops the combinations
    that have all of its values."""
    if not isinstance(value, list):
        issues.invalid(path, f"expected an array of tables, got {schema.kind_of(value)}")
        return []
    entries: list[dict[str, Scalar]] = []
    for number, entry in enumerate(value, 1):
        if not isinstance(entry, Mapping) or not entry:
            issues.invalid(path, f"item {number}: expected a table like {{ lr = 0.1 }}")
            continue
        good = True
        for key, item in entry.items():
            if key not in matrix:
                hint = schema.did_you_mean(key, matrix, "matrix keys are")
                issues.invalid(path, f"item {number}: {key!r} is not a matrix key; {hint}")
                good = False
            elif not any(same(item, known) for known in matrix[key]):
                listed = ", ".join(_toml(v) for v in matrix[key])
                issues.invalid(
                    path, f"item {number}: {key} = {_toml(item)} is not in matrix.{key} ({listed})"
                )
                good = False
        if good:
            entries.append(dict(entry))
    return entries


def combinations(
    matrix: Matrix, exclude: Sequence[Mapping[str, Scalar]]
) -> list[dict[str, Scalar]]:
    """Every combination of the matrix's values, in the order written, less the excluded."""
    keys = list(matrix)
    out: list[dict[str, Scalar]] = []
    for items in itertools.product(*(matrix[key] for key in keys)):
        values = dict(zip(keys, items, strict=True))
        if not any(all(same(values[k], v) for k, v in entry.items()) for entry in exclude):
            out.append(values)
    return out


def substitute(
    issues: schema.Issues, value: Any, path: KeyPath, values: Mapping[str, Scalar] | None
) -> Any:
    """`value` with every `${matrix.KEY}` replaced (recursively in tables and arrays);
    `values` is None for a task without a matrix, where a placeholder is an error."""
    if isinstance(value, str):
        return _substitute_text(issues, value, path, values)
    if isinstance(value, Mapping):
        text = len(path) >= 1 and path[-1] in _TEXT_TABLES
        out: dict[str, Any] = {}
        for key, item in value.items():
            new = substitute(issues, item, (*path, key), values)
            out[key] = format_value(new) if text and isinstance(item, str) else new
        return out
    if isinstance(value, list):
        return [substitute(issues, item, path, values) for item in value]
    return value


def _substitute_text(
    issues: schema.Issues, text: str, path: KeyPath, values: Mapping[str, Scalar] | None
) -> Any:
    found = _PLACEHOLDER.findall(text)
    if not found:
        return text
    if values is None:
        issues.invalid(path, f"{text!r} names a matrix value, but the task has no matrix")
        return text
    for key in found:
        if key not in values:
            hint = schema.did_you_mean(key, values, "matrix keys are")
            issues.invalid(path, f"${{matrix.{key}}} is not a matrix key; {hint}")
            return text
    whole = _PLACEHOLDER.fullmatch(text)
    if whole is not None:
        return values[whole[1]]
    return _PLACEHOLDER.sub(lambda m: format_value(values[m[1]]), text)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float)


def _toml(value: object) -> str:
    return repr(value) if isinstance(value, str) else format_value(value)
