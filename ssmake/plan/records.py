"""The shapes of the records ssmake keeps in the store, checked when read.

A record of the wrong shape (written by hand, by another tool, or cut short) is
treated as absent, so the task runs again and the record is rewritten: it never
counts as a result and never crashes a plan. Each check returns what is wrong,
or None for a record of the right shape.
"""

from __future__ import annotations

from typing import Any

# key -> the types its value may have, in a marker or run record.
_MARKER_FIELDS: dict[str, tuple[type, ...]] = {
    "fingerprint": (str,),
    "job": (str,),
    "components": (dict,),
    "outputs": (dict,),
}
_OUTPUT_FIELDS: dict[str, tuple[type, ...]] = {"key": (str,), "size": (int,)}
# An in-flight record names its job and the process holding it.
_INFLIGHT_FIELDS: dict[str, tuple[type, ...]] = {
    "job": (str,),
    "fingerprint": (str,),
    "host": (str,),
    "pid": (int,),
}


# A failed attempt names its job and fingerprint, and says when it failed.
_FAILURE_FIELDS: dict[str, tuple[type, ...]] = {
    "job": (str,),
    "fingerprint": (str,),
    "epoch": (int, float),
}


def failure_problem(doc: Any) -> str | None:
    """What is wrong with a failed attempt's record, or None."""
    return _fields_problem(doc, _FAILURE_FIELDS)


def marker_problem(doc: Any) -> str | None:
    """What is wrong with a marker or run record, or None."""
    problem = _fields_problem(doc, _MARKER_FIELDS)
    if problem is not None:
        return problem
    for kind in ("model", "output"):
        out = doc["outputs"].get(kind)
        if out is None:
            return f"no outputs.{kind}"
        problem = _fields_problem(out, _OUTPUT_FIELDS)
        if problem is not None:
            return f"outputs.{kind}: {problem}"
    return None


def inflight_problem(doc: Any) -> str | None:
    """What is wrong with an in-flight record, or None."""
    return _fields_problem(doc, _INFLIGHT_FIELDS)


def _fields_problem(doc: Any, fields: dict[str, tuple[type, ...]]) -> str | None:
    if not isinstance(doc, dict):
        return f"not a JSON object but {type(doc).__name__}"
    for key, types in fields.items():
        if key not in doc:
            return f"no {key}"
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, types):
            return f"{key} is {type(value).__name__}, not {types[0].__name__}"
    return None
