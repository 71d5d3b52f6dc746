"""`ssmake gc [--keep N] [--dry-run]`: free the store (and the local work directory) of
job results nothing refers to any more.

A task keeps the job of its marker, of its in-flight record and of its last failed
attempt, and the run records of its N most recent runs with their jobs (a task
whose inputs go back to an earlier version is restored from those, not run again).
Every other job's outputs, logs and run record go, and so do local run directories
whose job is not running. Nothing else is touched: state, synced inputs and code
tarballs stay, as does everything of a task that is running.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ssmake.commands import common
from ssmake.errors import EXIT_OK, KeyNotFound
from ssmake.plan import layout
from ssmake.stores import ObjectInfo, Store
from ssmake.ui.lines import human_size

DEFAULT_KEEP = 3
# What a task's directory holds besides its jobs' directories.
_NOT_JOBS = frozenset({"runs", "state", "input", "code"})


@dataclass
class _Task:
    """One task's objects in the store, by what they are."""

    prefix: str
    records: dict[str, ObjectInfo] = field(default_factory=dict)  # run records by key
    jobs: dict[str, list[ObjectInfo]] = field(default_factory=dict)  # objects by job
    files: dict[str, ObjectInfo] = field(default_factory=dict)  # marker, in-flight, …


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    store, keep, dry = session.store, max(0, args.keep), args.dry_run
    verb = "would remove" if dry else "removed"
    freed = jobs_removed = records_removed = 0
    running: set[str] = set()
    try:
        for slug, task in sorted(_tasks(store, f"{session.project.name}/").items()):
            kept = _kept_jobs(store, task, keep)
            running |= kept.running
            for key in kept.stale_records:
                freed += task.records[key].size
                records_removed += 1
                if not dry:
                    store.delete(key)
            for job, objects in sorted(task.jobs.items()):
                if job in kept.jobs:
                    continue
                size = sum(o.size for o in objects)
                print(f"{slug}: {verb} job {job} ({human_size(size)})", file=sys.stderr)
                freed += size
                jobs_removed += 1
                if not dry:
                    store.delete_prefix(f"{task.prefix}{job}/")
        runs_dir = session.work_dir / "runs"
        for run_dir in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
            if run_dir.name in running:
                continue
            size = _tree_size(run_dir)
            print(f"{verb} local run directory {run_dir} ({human_size(size)})", file=sys.stderr)
            freed += size
            if not dry:
                shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        session.close()
    what = f"{jobs_removed} job(s), {records_removed} run record(s)"
    print(
        f"ssmake: {'would free' if dry else 'freed'} {human_size(freed)} ({freed} bytes): {what}",
        file=sys.stderr,
    )
    return EXIT_OK


def _tasks(store: Store, project_prefix: str) -> dict[str, _Task]:
    tasks: dict[str, _Task] = {}
    for obj in store.list(project_prefix):
        rest = obj.key[len(project_prefix) :]
        slug, _, inner = rest.partition("/")
        if not inner:
            continue
        task = tasks.setdefault(slug, _Task(f"{project_prefix}{slug}/"))
        top, _, below = inner.partition("/")
        if not below:
            task.files[top] = obj
        elif top == "runs" and below.endswith(".json") and "/" not in below:
            task.records[obj.key] = obj
        elif top not in _NOT_JOBS:
            task.jobs.setdefault(top, []).append(obj)
    return tasks


@dataclass
class _Kept:
    jobs: set[str]
    running: set[str]
    stale_records: list[str]


def _kept_jobs(store: Store, task: _Task, keep: int) -> _Kept:
    jobs: set[str] = set()
    running: set[str] = set()
    for name in (layout.MARKER, "inflight.json", "failed.json"):
        if name in task.files:
            job = _job_of(store, task.files[name].key)
            if job:
                jobs.add(job)
                if name == "inflight.json":
                    running.add(job)
    current = _job_of(store, task.files[layout.MARKER].key) if layout.MARKER in task.files else ""
    dated = []
    for key in task.records:
        doc = _read(store, key)
        job = str(doc.get("job", ""))
        # The marker's run counts first among the recent ones, then by time.
        dated.append((job == current, str(doc.get("time", "")), key, job))
    dated.sort(reverse=True)
    stale = []
    for rank, (_current, _time, key, job) in enumerate(dated):
        if rank < keep or job in jobs:
            jobs.add(job)
        else:
            stale.append(key)
    return _Kept(jobs, running, stale)


def _job_of(store: Store, key: str) -> str:
    return str(_read(store, key).get("job", ""))


def _read(store: Store, key: str) -> dict[str, object]:
    try:
        doc = json.loads(store.get(key))
    except (KeyNotFound, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in _files(root))


def _files(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path
