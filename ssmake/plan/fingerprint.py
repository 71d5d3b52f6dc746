"""A task's fingerprint: sha256 over a canonical JSON of everything that decides its result.

Components (kept in the marker so `explain` can say what changed):
code, image, inputs, params, and the schema version. Left out on purpose, so that
changing them reruns nothing: instance_type, spot, max_wait/max_run, volume_size,
tags, download and output_path.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssmake.plan.docker_context import context_digests, relative_excludes
from ssmake.plan.hashcache import HashCache
from ssmake.plan.ignore import IgnoreMatcher
from ssmake.project.model import Project, Task

SCHEMA_VERSION = 1

Components = dict[str, Any]
S3Lister = Callable[[str], Mapping[str, tuple[int, str]]]


def canonical_json(value: object) -> bytes:
    """The one serialisation that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(value: object) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    value: str
    components: Components


def _within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


class Fingerprinter:
    """Computes fingerprints of a project's tasks, hashing files through a HashCache."""

    def __init__(
        self,
        project: Project,
        hashes: HashCache,
        *,
        s3_lister: S3Lister | None = None,
    ) -> None:
        self.project = project
        self.root = project.root.resolve()
        self.hashes = hashes
        self.s3_lister = s3_lister
        exclude = {t.output_path.strip("/") for t in project.tasks.values() if t.output_path}
        if not project.store.startswith("s3://") and project.store:
            exclude.add(project.store.strip("/"))
        #: Project-relative paths that never count: the local store, download destinations.
        self.excluded = frozenset(e for e in exclude if e != ".")
        self._matcher = IgnoreMatcher(self.root, self.excluded)
        self._trees: dict[Path, dict[str, str]] = {}

    def resolve(self, rel: str) -> Path:
        path = Path(rel).expanduser()
        return (path if path.is_absolute() else self.root / path).resolve()

    def files_under(self, path: Path) -> dict[str, Path]:
        """Files a directory (or a single file) contributes: relative name -> path."""
        if path.is_file():
            return {path.name: path}
        matcher = self._matcher if _within(path, self.root) else IgnoreMatcher(path)
        return {rel: Path(p) for rel, _st, p in matcher.walk(path)}

    def hash_tree(self, path: Path) -> dict[str, str]:
        """Relative name -> sha256 of every file a directory (or one file) contributes."""
        cached = self._trees.get(path)
        if cached is not None:
            return cached
        if path.is_file():
            entries = [(path.name, os.stat(path), str(path))]
        else:
            matcher = self._matcher if _within(path, self.root) else IgnoreMatcher(path)
            entries = list(matcher.walk(path))
        digests = self.hashes.hash_files([(p, st) for _rel, st, p in entries])
        tree = {rel: d for (rel, _st, _p), d in zip(entries, digests, strict=True)}
        self._trees[path] = tree
        return tree

    def code_files(self, task: Task) -> dict[str, Path]:
        """What the code tarball holds of the user's files: archive name -> path."""
        files: dict[str, Path] = {}
        if task.source_dir is not None:
            files.update(self.files_under(self.resolve(task.source_dir)))
        else:
            entry = self.resolve(task.entry_point)
            files[entry.name] = entry
        for dep in task.dependencies:
            dep_path = self.resolve(dep)
            if dep_path.is_file():
                files[dep_path.name] = dep_path
            else:
                for rel, p in self.files_under(dep_path).items():
                    files[f"{dep_path.name}/{rel}"] = p
        if task.requirements is not None:
            req = self.resolve(task.requirements)
            if req not in files.values():
                files["requirements.txt"] = req
        return files

    def entry_name(self, task: Task) -> str:
        """The entry point's name inside the code tarball."""
        if task.source_dir is not None:
            return task.entry_point
        return Path(task.entry_point).name

    def _code(self, task: Task) -> Components:
        files: dict[str, str] = {}
        if task.source_dir is not None:
            files.update(self.hash_tree(self.resolve(task.source_dir)))
        else:
            entry = self.resolve(task.entry_point)
            files[entry.name] = self.hash_tree(entry)[entry.name]
        for dep in task.dependencies:
            dep_path = self.resolve(dep)
            for rel, d in self.hash_tree(dep_path).items():
                files[rel if dep_path.is_file() else f"{dep_path.name}/{rel}"] = d
        if task.requirements is not None:
            req = self.resolve(task.requirements)
            inside = task.source_dir is not None and _within(req, self.resolve(task.source_dir))
            if not inside:
                files["requirements.txt"] = self.hash_tree(req)[req.name]
        return {"entry_point": self.entry_name(task), "files": files}

    def _image(self, task: Task) -> Components:
        image: Components = {
            "framework": task.framework,
            "framework_version": task.framework_version,
            "python_version": task.python_version,
            "uri": task.image.uri,
            "local_docker": task.local_docker,
        }
        if task.dockerfile_content is not None:
            image["dockerfile"] = hashlib.sha256(task.dockerfile_content.encode()).hexdigest()
        elif task.dockerfile is not None:
            context = self.resolve(task.dockerfile)
            image["dockerfile"] = self.hash_tree(context / "Dockerfile")["Dockerfile"]
            # What `docker build` is sent (.dockerignore applies, .gitignore does not).
            exclude = relative_excludes(context, self.root, self.excluded)
            image["context"] = context_digests(context, self.hashes, exclude)
        return image

    def _inputs(self, task: Task, upstream: Mapping[str, Mapping[str, Any]]) -> Components:
        inputs: Components = {}
        for inp in task.inputs:
            entry: Components = {"kind": inp.kind, "distribution": inp.distribution}
            if inp.path is not None:
                entry["files"] = self.hash_tree(self.resolve(inp.path))
            elif inp.s3 is not None:
                entry["uri"] = inp.s3
                if self.s3_lister is not None:
                    entry["objects"] = {k: list(v) for k, v in self.s3_lister(inp.s3).items()}
            else:
                marker = upstream.get(inp.task or "", {})
                entry.update(
                    task=inp.task,
                    output=inp.output,
                    upstream=marker.get("fingerprint"),
                    job=marker.get("job"),
                )
            inputs[inp.name] = entry
        for name in task.after:
            marker = upstream.get(name, {})
            inputs[f"after:{name}"] = {
                "kind": "after",
                "task": name,
                "upstream": marker.get("fingerprint"),
                "job": marker.get("job"),
            }
        return inputs

    def _params(self, task: Task) -> Components:
        return {
            "hyperparameters": task.hyperparameters,
            # Values are hashed, never kept: environments carry secrets.
            "environment": {
                k: hashlib.sha256(v.encode()).hexdigest() for k, v in task.environment.items()
            },
            "instance_count": task.instance_count,
            "backend": self.project.backend,
            "completion": task.completion,
            "metrics": task.metrics,
        }

    def fingerprint(self, task: Task, upstream: Mapping[str, Mapping[str, Any]]) -> Fingerprint:
        """Fingerprint `task`; `upstream` maps each upstream task's name to its marker."""
        components: Components = {
            "schema": SCHEMA_VERSION,
            "code": self._code(task),
            "image": self._image(task),
            "inputs": self._inputs(task, upstream),
            "params": self._params(task),
        }
        return Fingerprint(digest(components), components)


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
        else:
            task = n.get("task")
            if o.get("task") != task or o.get("output") != n.get("output"):
                reasons.append(f"{label}: now {task} {n.get('output', '')}".rstrip())
            else:
                reasons.append(f"upstream {task} has new outputs")
    return reasons


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
