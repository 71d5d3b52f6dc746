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
        out = [f"{prefix}: {name} changed" for name in changed]
        out += [f"{prefix}: {name} added" for name in added]
        out += [f"{prefix}: {name} removed" for name in removed]
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
        if o.get(key, "<unset>") == n.get(key, "<unset>"):
            continue
        name = key.lstrip(".")
        if name.startswith("environment."):
            reasons.append(f"{name}: value changed" if key in o and key in n else f"{name}: set")
            if key not in n:
                reasons[-1] = f"{name}: removed"
            continue
        reasons.append(f"{name}: {_show(o.get(key))} -> {_show(n.get(key))}")
    return reasons


def _show(value: object) -> str:
    return "(unset)" if value is None else json.dumps(value)
