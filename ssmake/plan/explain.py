"""Why a task is stale: the differences between a marker's components and new ones."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ssmake.plan.fingerprint import Components


def explain_changes(old: Mapping[str, Any] | None, new: Components) -> list[str]:
    """Human reasons why `new` components differ from a marker's `old` ones."""
    if old is None:
        return ["no marker yet"]
    if old.get("schema") != new["schema"]:
        return ["marker written by an older ssmake (fingerprint schema changed)"]
    reasons: list[str] = []
    reasons.extend(_diff_code(old.get("code", {}), new["code"]))
    if old.get("image") != new["image"]:
        reasons.extend(_diff_image(old.get("image", {}), new["image"]))
    reasons.extend(_diff_inputs(old.get("inputs", {}), new["inputs"]))
    reasons.extend(_diff_params(old.get("params", {}), new["params"]))
    return reasons


def own_changes(old: Mapping[str, Any], new: Components) -> list[str]:
    """The reasons of `explain_changes` but those about upstream tasks' results."""
    inputs = {
        name: old.get("inputs", {}).get(name, entry)
        if entry.get("kind") in ("task", "after")
        else entry
        for name, entry in new["inputs"].items()
    }
    return explain_changes(old, {**new, "inputs": inputs})


def _file_changes(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[list[str], ...]:
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    return added, removed, changed


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _summarise(prefix: str, old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    added, removed, changed = _file_changes(old, new)
    total = len(added) + len(removed) + len(changed)
    if total == 0:
        return []
    if total <= 3:
        out = [f"{prefix}: {shown(name)} changed" for name in changed]
        out += [f"{prefix}: {shown(name)} added" for name in added]
        out += [f"{prefix}: {shown(name)} removed" for name in removed]
        return out
    parts = []
    if changed:
        parts.append(_count(len(changed), "file") + " changed")
    if added:
        parts.append(_count(len(added), "file") + " added")
    if removed:
        parts.append(f"{len(removed)} removed")
    return [f"{prefix}: " + ", ".join(parts)]


def _diff_code(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    reasons = []
    if old.get("entry_point") != new["entry_point"]:
        reasons.append(f"code: entry point {old.get('entry_point')} -> {new['entry_point']}")
    reasons.extend(_summarise("code", old.get("files", {}), new["files"]))
    was, now = set(old.get("executable", ())), set(new.get("executable", ()))
    files = new["files"]
    reasons += [
        f"code: {shown(n)} became executable"
        for n in sorted(now - was)
        if n in old.get("files", {})
    ]
    reasons += [
        f"code: {shown(n)} is no longer executable" for n in sorted(was - now) if n in files
    ]
    return reasons


def _diff_image(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    reasons = []
    for key in sorted(set(old) | set(new)):
        if key == "context":
            reasons.extend(_summarise("image context", old.get(key) or {}, new.get(key) or {}))
        elif old.get(key) != new.get(key):
            if key == "dockerfile":
                reasons.append("image: Dockerfile changed")
            else:
                reasons.append(f"image.{key}: {old.get(key)} -> {new.get(key)}")
    return reasons or ["image changed"]


def _diff_inputs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    reasons = []
    for name in sorted(set(old) | set(new)):
        o, n = old.get(name), new.get(name)
        label = f"upstream {name[6:]}" if name.startswith("after:") else f"input {name}"
        if o == n:
            continue
        if o is None:
            reasons.append(f"{label}: added")
        elif n is None:
            reasons.append(f"{label}: removed")
        elif o.get("kind") != n.get("kind"):
            reasons.append(f"{label}: now {n.get('kind')} (was {o.get('kind')})")
        elif o.get("distribution") != n.get("distribution"):
            reasons.append(f"{label}: distribution {o.get('distribution')} -> {n['distribution']}")
        elif n["kind"] == "path":
            reasons.extend(_summarise(label, o.get("files", {}), n["files"]))
        elif n["kind"] == "s3":
            if o.get("uri") != n.get("uri"):
                reasons.append(f"{label}: {o.get('uri')} -> {n.get('uri')}")
            else:
                old_objs = {k: json.dumps(v) for k, v in (o.get("objects") or {}).items()}
                new_objs = {k: json.dumps(v) for k, v in (n.get("objects") or {}).items()}
                reasons.extend(_summarise(label, old_objs, new_objs) or [f"{label}: changed"])
        elif "gather" in n and "gather" in o and o.get("output") == n.get("output"):
            reasons.extend(_diff_gather(label, o["gather"], n["gather"]))
        else:
            task = n.get("task")
            if o.get("task") != task or o.get("output") != n.get("output"):
                reasons.append(f"{label}: now {task} {n.get('output', '')}".rstrip())
            elif n.get("output") == "state":
                reasons.append(f"{label}: the state of upstream {task} changed")
            else:
                reasons.append(f"upstream {task} has new outputs")
    return reasons


def _diff_gather(label: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed among the expansions a gathering input reads."""
    reasons = [f"{label}: {name} added" for name in new if name not in old]
    reasons += [f"{label}: {name} removed" for name in old if name not in new]
    reasons += [
        f"{label}: upstream {name} has new outputs"
        for name in new
        if name in old and old[name] != new[name]
    ]
    return reasons or [f"{label}: changed"]


def _flat(prefix: str, value: object) -> dict[str, object]:
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}", v))
        return out or {prefix: {}}
    return {prefix: value}


def _diff_params(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    reasons = []
    o, n = _flat("", old), _flat("", new)
    for key in sorted(set(o) | set(n)):
        before, after = o.get(key, _UNSET), n.get(key, _UNSET)
        if _same(before, after):
            continue
        name = key.lstrip(".")
        if name.startswith("environment."):
            reasons.append(f"{name}: value changed" if key in o and key in n else f"{name}: set")
            if key not in n:
                reasons[-1] = f"{name}: removed"
            continue
        change = f"{name}: {_show(o.get(key))} -> {_show(n.get(key))}"
        kinds = (type(before).__name__, type(after).__name__)
        if _UNSET not in (before, after) and None not in (before, after) and kinds[0] != kinds[1]:
            change += f" ({kinds[0]} -> {kinds[1]})"  # 2 -> 2.0, true -> 1: equal in Python
        reasons.append(change)
    return reasons


_UNSET = "<unset>"


def _same(a: object, b: object) -> bool:
    """Equal as the fingerprint sees them: by their JSON (2 and 2.0 differ)."""
    return a is b or json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _show(value: object) -> str:
    return "(unset)" if value is None else json.dumps(value)


def shown(name: str) -> str:
    """A file name for the terminal: bytes that are not UTF-8 as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
