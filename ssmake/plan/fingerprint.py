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
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ssmake.errors import ConfigError
from ssmake.plan.canonical import (
    SCHEMA_VERSION,
    Components,
    Fingerprint,
    canonical_json,
    digest,
    upstream_outputs,
)
from ssmake.plan.docker_context import context_files, digest_files, relative_excludes
from ssmake.plan.hashcache import HashCache, HashProgress
from ssmake.plan.ignore import Entry, IgnoreMatcher, walk_path
from ssmake.plan.shipped import Boundary, walk_input
from ssmake.plan.snapshot import FileEntry, Snapshot, is_executable
from ssmake.plan.statdigest import StatDigest, Walk, walk_record
from ssmake.project.model import Input, Project, Task
from ssmake.project.paths import relative_to_root

__all__ = ["SCHEMA_VERSION", "Components", "Fingerprint", "Fingerprinter", "canonical_json"]

S3Lister = Callable[[str], Mapping[str, tuple[int, str]]]
# A task's name -> its state as stored: relative key -> (size, ETag).
StateLister = Callable[[str], Mapping[str, tuple[int, str]]]


def _within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


Stated = tuple[os.stat_result, str]  # a file's stat when walked, and its path


class _Files(Protocol):
    """What the component builders learn of files: content hashes, or stand-ins."""

    def files(self, part: tuple[str, ...], files: Mapping[str, Stated]) -> Mapping[str, str]: ...

    def context(self, context: Path, exclude: frozenset[str]) -> Mapping[str, str]: ...


class _Blank(dict[str, str]):
    """An empty tree that answers every name with "": the stat pass keeps the files
    out of the components and hashes their identities instead."""

    def __missing__(self, key: str) -> str:
        return ""


class _Hashing:
    """Hashes files through the cache, and records each in the task's snapshot."""

    def __init__(self, fingerprinter: Fingerprinter, task: Task) -> None:
        self.fp = fingerprinter
        self.snapshot = Snapshot(task.name)
        tell = fingerprinter.on_hashing
        self.progress: HashProgress | None = (
            None if tell is None else lambda done, total: tell(task.name, done, total)
        )

    def files(self, part: tuple[str, ...], files: Mapping[str, Stated]) -> Mapping[str, str]:
        entries = self.fp.file_entries(files, self.progress)
        if part[0] == "code":
            self.snapshot.code.update(entries)
        elif part[0] == "input":
            self.snapshot.inputs[part[1]] = entries
        return {name: e.sha256 for name, e in entries.items()}

    def context(self, context: Path, exclude: frozenset[str]) -> Mapping[str, str]:
        return digest_files(self.fp.context_entries(context, exclude), self.fp.hashes)


class _Identities:
    """Keeps the files out of the components: the fingerprinter records the walks,
    whose files' identities the stat digest hashes instead."""

    def files(self, part: tuple[str, ...], files: Mapping[str, Stated]) -> Mapping[str, str]:
        return _Blank()

    def context(self, context: Path, exclude: frozenset[str]) -> Mapping[str, str]:
        return _Blank()


class Fingerprinter:
    """Computes fingerprints of a project's tasks, hashing files through a HashCache."""

    def __init__(
        self,
        project: Project,
        hashes: HashCache,
        *,
        s3_lister: S3Lister | None = None,
        state_lister: StateLister | None = None,
    ) -> None:
        self.project = project
        self.root = project.root.resolve()
        self.hashes = hashes
        self.s3_lister = s3_lister
        self.state_lister = state_lister
        #: Told (task, bytes done, of total) while a task's files hash, when set.
        self.on_hashing: Callable[[str, int, int], None] | None = None
        places = [t.output_path for t in project.tasks.values() if t.output_path]
        if not project.store.startswith("s3://") and project.store:
            places.append(project.store.removeprefix("file://"))
        exclude = {relative_to_root(self.root, p) for p in places}
        #: Project-relative paths that never count, compared resolved: the local store,
        #: download destinations.
        self.excluded = frozenset(e for e in exclude if e is not None and e != ".")
        dependencies = {self.resolve(d) for t in project.tasks.values() for d in t.dependencies}
        self.boundary = Boundary(self.root, sorted(dependencies))
        self._matcher = IgnoreMatcher(self.root, self.excluded, self.boundary)
        self.forget()

    def forget(self) -> None:
        """Drop what this process learnt of the files: the next fingerprint walks and
        stats them again (after a job ran, or after waiting for another ssmake)."""
        self._walks: dict[Walk, tuple[list[Entry], dict[str, Stated]]] = {}
        self._contexts: dict[tuple[Path, frozenset[str]], list[Entry]] = {}
        # The walks one stat digest makes, in order, while it is being computed.
        self._recording: list[tuple[Walk, list[Entry]]] | None = None
        self._s3: dict[str, dict[str, list[Any]]] = {}
        self._states: dict[str, dict[str, list[Any]]] = {}

    def resolve(self, rel: str) -> Path:
        path = Path(rel).expanduser()
        return (path if path.is_absolute() else self.root / path).resolve()

    def _walked(self, walk: Walk, do: Callable[[], list[Entry]]) -> dict[str, Stated]:
        cached = self._walks.get(walk)
        if cached is None:
            entries = do()
            cached = self._walks[walk] = (entries, {rel: (st, p) for rel, st, p in entries})
        if self._recording is not None:
            self._recording.append((walk, cached[0]))
        return cached[1]

    def _tree(self, path: Path) -> dict[str, Stated]:
        """Code files a directory (or one file) contributes: relative name -> (stat, path)."""
        return self._walked(("tree", str(path), ()), lambda: walk_path(path, self._matcher))

    def input_files(self, inp: Input) -> dict[str, Stated]:
        """Files a local input delivers: every file under its path but its excludes."""
        assert inp.path is not None
        path = self.resolve(inp.path)
        return self._walked(
            ("data", str(path), inp.exclude),
            lambda: walk_input(path, inp.exclude, self.boundary),
        )

    def context_entries(self, context: Path, exclude: frozenset[str]) -> list[Entry]:
        key = (context, exclude)
        cached = self._contexts.get(key)
        if cached is None:
            cached = self._contexts[key] = context_files(context, exclude)
        if self._recording is not None:
            self._recording.append((("context", str(context), tuple(sorted(exclude))), cached))
        return cached

    def file_entries(
        self, files: Mapping[str, Stated], on_progress: HashProgress | None = None
    ) -> dict[str, FileEntry]:
        """Name -> FileEntry (content hashed through the cache) of walked files."""
        stated = list(files.values())
        digests = self.hashes.hash_files([(p, st) for st, p in stated], on_progress)
        shown = self.boundary.shown
        return {
            name: FileEntry(p, shown(p), st.st_size, d, is_executable(st))
            for name, (st, p), d in zip(files, stated, digests, strict=True)
        }

    def code_files(self, task: Task) -> dict[str, Stated]:
        """What the code tarball holds of the user's files: archive name -> (stat, path)."""
        files: dict[str, Stated] = {}
        source = self.resolve(task.source_dir) if task.source_dir is not None else None
        if source is not None:
            files.update(self._tree(source))
        else:
            entry = self.resolve(task.entry_point)
            files[entry.name] = self._tree(entry)[entry.name]
        for dep in task.dependencies:
            dep_path = self.resolve(dep)
            for rel, stated in self._tree(dep_path).items():
                files[rel if not dep_path.is_dir() else f"{dep_path.name}/{rel}"] = stated
        if task.requirements is not None:
            # Shipped, so fingerprinted, even when an ignore rule matches it.
            req = self.resolve(task.requirements)
            inside = source is not None and _within(req, source)
            name = req.relative_to(source).as_posix() if source and inside else "requirements.txt"
            files.setdefault(name, self._tree(req)[req.name])
        return files

    def entry_name(self, task: Task) -> str:
        """The entry point's name inside the code tarball."""
        if task.source_dir is not None:
            return task.entry_point
        return Path(task.entry_point).name

    def _code(self, task: Task, trees: _Files) -> Components:
        files = self.code_files(task)
        executable = sorted(name for name, (st, _p) in files.items() if is_executable(st))
        return {
            "entry_point": self.entry_name(task),
            "files": dict(trees.files(("code",), files)),
            "executable": executable,
        }

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
            dockerfile = self._tree(context / "Dockerfile")
            image["dockerfile"] = trees.files(("image",), dockerfile)["Dockerfile"]
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
                files = self.input_files(inp)
                if not files and not inp.allow_empty:
                    why = "all its files are excluded" if inp.exclude else "it has no files"
                    raise ConfigError(
                        f"task {task.name}: input {inp.name} ({inp.path}): {why}; "
                        "put the data there, or set allow_empty = true on the input"
                    )
                entry["files"] = dict(trees.files(("input", inp.name), files))
            elif inp.s3 is not None:
                entry["uri"] = inp.s3
                if self.s3_lister is not None:
                    entry["objects"] = self._s3_objects(inp.s3, self.s3_lister)
            else:
                entry.update(task=inp.task, output=inp.output)
                names = inp.gather or (inp.task or "",)
                content = {name: self._upstream_content(name, inp, upstream) for name in names}
                if inp.gather:
                    entry["gather"] = content
                else:
                    entry.update(content[names[0]])
            inputs[inp.name] = entry
        for name in task.after:
            inputs[f"after:{name}"] = {
                "kind": "after",
                "task": name,
                "outputs": upstream_outputs(upstream.get(name)),
            }
        return inputs

    def _upstream_content(
        self, name: str, inp: Input, upstream: Mapping[str, Mapping[str, Any]]
    ) -> Components:
        """What a task input receives of upstream `name`, by content."""
        if inp.output == "state":
            return {"state": self._state(name)}
        return {"content": upstream_outputs(upstream.get(name)).get(inp.output)}

    def _state(self, task: str) -> dict[str, list[Any]] | None:
        """The listing of the state a task's job leaves, as a downstream receives it."""
        if self.state_lister is None:
            return None
        cached = self._states.get(task)
        if cached is None:
            cached = self._states[task] = {k: list(v) for k, v in self.state_lister(task).items()}
        return cached

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
        files = _Hashing(self, task)
        components = self._components(task, upstream, files)
        return Fingerprint(digest(components), components, snapshot=files.snapshot)

    def stat_digest(self, task: Task, upstream: Mapping[str, Mapping[str, Any]]) -> StatDigest:
        """A digest of everything `fingerprint` reads, with files by their identity on
        disk instead of their content, and whether it may be recorded: False while any
        file is within the racy window. Equal digests mean equal fingerprints, as long
        as a file's identity changes whenever its content does (the hash cache's own
        assumption, with ctime_ns), and it walks exactly the files the snapshot would."""
        self._recording = []
        try:
            skeleton = self._components(task, upstream, _Identities())
            walks = self._recording
        finally:
            self._recording = None
        return StatDigest(canonical_json(skeleton), [(w, walk_record(w, e)) for w, e in walks])
