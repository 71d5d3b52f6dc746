"""A task's fingerprint: sha256 over a canonical JSON of everything that decides its result.

Components (kept in the marker so `explain` can say what changed):
code, image, inputs, params, and the schema version. Left out on purpose, so that
changing them reruns nothing: instance_type, spot, max_wait/max_run, volume_size,
tags, download and output_path.

A task's stat digest (see `stat_digest`) is the same computation with every file's
content hash replaced by its identity on disk, (path, inode, size, mtime_ns,
ctime_ns): when it matches the digest recorded at a moment the fingerprint was
known, the fingerprint is known again without reading the hash cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ssmake.plan.docker_context import context_files, digest_files, relative_excludes
from ssmake.plan.hashcache import HashCache
from ssmake.plan.ignore import Entry, IgnoreMatcher, walk_path
from ssmake.plan.statdigest import StatDigest, Walk
from ssmake.project.model import Project, Task

SCHEMA_VERSION = 1

Components = dict[str, Any]
S3Lister = Callable[[str], Mapping[str, tuple[int, str]]]


def canonical_json(value: object) -> bytes:
    """The one serialisation that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(value: object) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


class Fingerprint:
    """A task's fingerprint. Its components are worked out when first asked for: a
    plan that a stat digest answered knows the value without them."""

    __slots__ = ("_components", "_compute", "value")

    def __init__(
        self,
        value: str,
        components: Components | None = None,
        compute: Callable[[], Components] | None = None,
    ) -> None:
        self.value = value
        self._components = components
        self._compute = compute

    @property
    def components(self) -> Components:
        if self._components is None:
            assert self._compute is not None, "a Fingerprint needs components or a way to them"
            self._components = self._compute()
        return self._components


def _within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


class _Files(Protocol):
    """What the component builders learn of files: content hashes, or stand-ins."""

    def tree(self, path: Path) -> Mapping[str, str]: ...

    def context(self, context: Path, exclude: frozenset[str]) -> Mapping[str, str]: ...


class _Blank(dict[str, str]):
    """An empty tree that answers every name with "": the stat pass keeps the files
    out of the components and hashes their identities instead."""

    def __missing__(self, key: str) -> str:
        return ""


class _Hashing:
    def __init__(self, fingerprinter: Fingerprinter) -> None:
        self.fp = fingerprinter

    def tree(self, path: Path) -> Mapping[str, str]:
        return self.fp.hash_tree(path)

    def context(self, context: Path, exclude: frozenset[str]) -> Mapping[str, str]:
        return digest_files(self.fp.context_entries(context, exclude), self.fp.hashes)


class _Identities:
    """Records the identity of every file the builders ask about, in order."""

    def __init__(self, fingerprinter: Fingerprinter) -> None:
        self.fp = fingerprinter
        self.walks: list[tuple[Walk, list[Entry]]] = []

    def tree(self, path: Path) -> Mapping[str, str]:
        self.walks.append((("tree", str(path), ()), self.fp.entries(path)))
        return _Blank()

    def context(self, context: Path, exclude: frozenset[str]) -> Mapping[str, str]:
        walk = ("context", str(context), tuple(sorted(exclude)))
        self.walks.append((walk, self.fp.context_entries(context, exclude)))
        return _Blank()


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
        # One walk per path for the fingerprinter's life (a session: one plan or build).
        self._walks: dict[Path, list[Entry]] = {}
        self._contexts: dict[tuple[Path, frozenset[str]], list[Entry]] = {}
        self._trees: dict[Path, dict[str, str]] = {}
        self._s3: dict[str, dict[str, list[Any]]] = {}

    def resolve(self, rel: str) -> Path:
        path = Path(rel).expanduser()
        return (path if path.is_absolute() else self.root / path).resolve()

    def entries(self, path: Path) -> list[Entry]:
        """(relative name, stat, path) of every file a directory (or one file) contributes."""
        cached = self._walks.get(path)
        if cached is None:
            cached = self._walks[path] = walk_path(path, self._matcher)
        return cached

    def context_entries(self, context: Path, exclude: frozenset[str]) -> list[Entry]:
        key = (context, exclude)
        cached = self._contexts.get(key)
        if cached is None:
            cached = self._contexts[key] = context_files(context, exclude)
        return cached

    def files_under(self, path: Path) -> dict[str, Path]:
        """Files a directory (or a single file) contributes: relative name -> path."""
        return {rel: Path(p) for rel, _st, p in self.entries(path)}

    def hash_tree(self, path: Path) -> dict[str, str]:
        """Relative name -> sha256 of every file a directory (or one file) contributes."""
        cached = self._trees.get(path)
        if cached is not None:
            return cached
        entries = self.entries(path)
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

    def _code(self, task: Task, trees: _Files) -> Components:
        files: dict[str, str] = {}
        if task.source_dir is not None:
            files.update(trees.tree(self.resolve(task.source_dir)))
        else:
            entry = self.resolve(task.entry_point)
            files[entry.name] = trees.tree(entry)[entry.name]
        for dep in task.dependencies:
            dep_path = self.resolve(dep)
            for rel, d in trees.tree(dep_path).items():
                files[rel if dep_path.is_file() else f"{dep_path.name}/{rel}"] = d
        if task.requirements is not None:
            req = self.resolve(task.requirements)
            inside = task.source_dir is not None and _within(req, self.resolve(task.source_dir))
            if not inside:
                files["requirements.txt"] = trees.tree(req)[req.name]
        return {"entry_point": self.entry_name(task), "files": files}

    def _image(self, task: Task, trees: _Files) -> Components:
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
            image["dockerfile"] = trees.tree(context / "Dockerfile")["Dockerfile"]
            # What `docker build` is sent (.dockerignore applies, .gitignore does not).
            exclude = relative_excludes(context, self.root, self.excluded)
            image["context"] = trees.context(context, exclude)
        return image

    def _inputs(
        self, task: Task, upstream: Mapping[str, Mapping[str, Any]], trees: _Files
    ) -> Components:
        inputs: Components = {}
        for inp in task.inputs:
            entry: Components = {"kind": inp.kind, "distribution": inp.distribution}
            if inp.path is not None:
                entry["files"] = trees.tree(self.resolve(inp.path))
            elif inp.s3 is not None:
                entry["uri"] = inp.s3
                if self.s3_lister is not None:
                    entry["objects"] = self._s3_objects(inp.s3, self.s3_lister)
            elif inp.gather:
                entry.update(task=inp.task, output=inp.output, gather={})
                for name in inp.gather:
                    marker = upstream.get(name, {})
                    entry["gather"][name] = {
                        "upstream": marker.get("fingerprint"),
                        "job": marker.get("job"),
                    }
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

    def _s3_objects(self, uri: str, lister: S3Lister) -> dict[str, list[Any]]:
        # Listed once per session: the stat pass and the hashing pass see the same objects.
        cached = self._s3.get(uri)
        if cached is None:
            cached = self._s3[uri] = {k: list(v) for k, v in lister(uri).items()}
        return cached

    def _params(self, task: Task) -> Components:
        params: Components = {
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
        if task.distribution:
            # Only when set, so that the fingerprints of every other task stay as they were.
            params["distribution"] = task.distribution
        return params

    def _components(
        self, task: Task, upstream: Mapping[str, Mapping[str, Any]], trees: _Files
    ) -> Components:
        return {
            "schema": SCHEMA_VERSION,
            "code": self._code(task, trees),
            "image": self._image(task, trees),
            "inputs": self._inputs(task, upstream, trees),
            "params": self._params(task),
        }

    def fingerprint(self, task: Task, upstream: Mapping[str, Mapping[str, Any]]) -> Fingerprint:
        """Fingerprint `task`; `upstream` maps each upstream task's name to its marker."""
        components = self._components(task, upstream, _Hashing(self))
        return Fingerprint(digest(components), components)

    def stat_digest(self, task: Task, upstream: Mapping[str, Mapping[str, Any]]) -> StatDigest:
        """A digest of everything `fingerprint` reads, with files by their identity on
        disk instead of their content, and whether it may be recorded: False while any
        file is within the racy window. Equal digests mean equal fingerprints, as long
        as a file's identity changes whenever its content does (the hash cache's own
        assumption, with ctime_ns added)."""
        identities = _Identities(self)
        skeleton = self._components(task, upstream, identities)
        return StatDigest(canonical_json(skeleton), identities.walks)
