"""Staging one task's job: its code tarball and input channels, from its snapshot.

Every byte packed or synced is verified against the snapshot the task was
fingerprinted from (ChangedWhileStaging otherwise, before anything is recorded).
A code tarball is named by the digest of the files it holds (name, exec bit,
size, sha256), so one packed before from the same files is shipped as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import worker_toolkit
from ssmake.build.gather import gather_channel
from ssmake.errors import TaskFailed
from ssmake.events import Notice, Reporter, SyncProgress
from ssmake.plan import layout
from ssmake.plan.hashcache import sha256_path
from ssmake.plan.jobspec import Channel
from ssmake.plan.planner import Marker
from ssmake.plan.snapshot import FileEntry, Snapshot
from ssmake.project.model import Project, Task
from ssmake.stores import ProgressFn, Store
from ssmake.stores.archive import pack_code
from ssmake.ui.lines import human_size

# Called with a task's name between its planning and its staging: how tests edit
# files "while ssmake runs" at exactly that moment.
STAGING_HOOKS: list[Callable[[str], None]] = []


def worker_toolkit_files() -> dict[str, Path]:
    """worker_toolkit's own files, packed into every job's code."""
    package = Path(worker_toolkit.__file__).parent
    return {
        f"worker_toolkit/{p.name}": p
        for p in sorted(package.iterdir())
        if p.suffix in (".py", ".typed")
    }


# The version of what a code tarball's name digests; a change of the packing (the
# entries' attributes, their order, the compression) must change it.
CODE_TARBALL_FORMAT = 1
_toolkit_hashes: dict[Path, tuple[int, int, str]] = {}
_toolkit_lock = threading.Lock()


def _toolkit_entry(path: Path) -> tuple[bool, int, str]:
    """(executable, size, sha256) of one of worker_toolkit's files, hashed once per
    process while it stays the same file."""
    st = path.stat()
    with _toolkit_lock:
        known = _toolkit_hashes.get(path)
        if known is None or known[:2] != (st.st_size, st.st_mtime_ns):
            known = (st.st_size, st.st_mtime_ns, sha256_path(path))
            _toolkit_hashes[path] = known
    return bool(st.st_mode & 0o100), known[0], known[2]


def code_digest(files: Mapping[str, Path], snapshot: Snapshot) -> str:
    """The name of the tarball of `files`: what each one holds, as the snapshot saw
    it (worker_toolkit's as they are)."""
    listing = []
    for name in sorted(files):
        entry = snapshot.code.get(name)
        if entry is not None:
            listing.append([name, entry.executable, entry.size, entry.sha256])
        else:
            listing.append([name, *_toolkit_entry(files[name])])
    doc = json.dumps([CODE_TARBALL_FORMAT, listing], separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


class Stager:
    """Packs and syncs what a task's job receives."""

    def __init__(self, project: Project, store: Store, reporter: Reporter, work_dir: Path) -> None:
        self.project = project
        self.store = store
        self.report = reporter
        self.work_dir = work_dir

    def stage(
        self, task: Task, snapshot: Snapshot, upstream: Mapping[str, Marker | None]
    ) -> tuple[str, list[Channel]]:
        """The code's URI and the job's channels."""
        for hook in STAGING_HOOKS:
            hook(task.name)
        return self.stage_code(task, snapshot), self.channels(task, upstream, snapshot)

    def stage_code(self, task: Task, snapshot: Snapshot) -> str:
        """The URI of the tarball of the snapshot's code files: packed, verifying each
        file against the snapshot, and uploaded, unless the store has it already."""
        files = {name: Path(e.path) for name, e in snapshot.code.items()}
        for name, path in worker_toolkit_files().items():
            files.setdefault(name, path)
        key = layout.code_key(self.project.name, task.name, code_digest(files, snapshot))
        if self.store.exists(key):
            # Packed before from files of the same content: the job receives exactly
            # what the snapshot names, whatever the files on disk hold by now.
            return self.store.uri(key)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.work_dir, suffix=".tar.gz")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            pack_code(tmp, sorted(files.items()), expected=snapshot.code)
            self.store.put_file(key, tmp)
        finally:
            tmp.unlink(missing_ok=True)
        return self.store.uri(key)

    def channels(
        self, task: Task, upstream: Mapping[str, Marker | None], snapshot: Snapshot
    ) -> list[Channel]:
        out: list[Channel] = []
        for inp in task.inputs:
            if inp.path is not None:
                prefix = layout.input_prefix(self.project.name, task.name) + inp.name + "/"
                files = snapshot.inputs[inp.name]
                self._warn_sharding(task, inp.name, inp.distribution, len(files))
                stats = self.store.sync_dir(
                    prefix, files, on_progress=self._progress(task.name, inp.name, files)
                )
                if stats.uploaded or stats.deleted:
                    self.report(
                        Notice(
                            f"input {inp.name}: {stats.uploaded} uploaded "
                            f"({human_size(stats.uploaded_bytes)}), {stats.deleted} deleted, "
                            f"{stats.unchanged} unchanged",
                            task.name,
                        )
                    )
                out.append(Channel(inp.name, self.store.uri(prefix), inp.distribution))
            elif inp.s3 is not None:
                out.append(Channel(inp.name, inp.s3, inp.distribution))
            elif inp.gather:
                uri = gather_channel(
                    self.store, self.project.name, task, inp, upstream, self.work_dir
                )
                out.append(Channel(inp.name, uri, inp.distribution))
            else:
                name = inp.task or ""
                marker = upstream.get(name)
                if marker is None:
                    raise TaskFailed(f"task {task.name}: upstream {name} has no result")
                if inp.output == "state":
                    uri = self.store.uri(layout.state_prefix(self.project.name, name))
                else:
                    uri = self.store.uri(str(marker["outputs"][inp.output]["key"]))
                out.append(Channel(inp.name, uri, inp.distribution))
        return out

    def _warn_sharding(self, task: Task, channel: str, distribution: str, count: int) -> None:
        if distribution == "ShardedByS3Key" and count < task.instance_count:
            self.report(
                Notice(
                    f"warning: input {channel} is ShardedByS3Key with {count} file(s) over "
                    f"{task.instance_count} instances: {task.instance_count - count} of them "
                    "will receive no files of it",
                    task.name,
                )
            )

    def _progress(self, task: str, channel: str, files: Mapping[str, FileEntry]) -> ProgressFn:
        total = sum(e.size for e in files.values())
        done = 0
        lock = threading.Lock()

        def on_progress(n: int) -> None:
            nonlocal done
            with lock:
                done += n
                now, of = done, total
            self.report(SyncProgress(task, channel, now, of))

        return on_progress
