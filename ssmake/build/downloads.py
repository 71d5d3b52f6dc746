"""Bringing a task's results back next to the project: model, output, state, logs.

The destination holds only what simple-sagemaker leaves there (`logs/`,
`model/`, `output/`, `state/`). Which job's results it holds is ssmake's own
bookkeeping, kept under `.ssmake/` (`<work dir>/downloads/`), keyed by the
destination's path.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ssmake.errors import EXIT_FAILED, EXIT_USAGE, StoreError
from ssmake.events import PhaseProgress, Reporter
from ssmake.plan import layout
from ssmake.progress import Throttled
from ssmake.stores import Store, local_path
from ssmake.stores.extract import extract

STAMPS = "downloads"
# A download this large reports its progress (PhaseProgress "downloading"), at most
# once per PROGRESS_INTERVAL seconds and once more when it ends.
PROGRESS_MIN_BYTES = 1 << 20
PROGRESS_INTERVAL = 0.1
_LOG_NAME = re.compile(r"algo-([1-9][0-9]*)\.log")


def download_results(
    store: Store,
    project: str,
    task: str,
    marker: dict[str, Any],
    dest: Path,
    kinds: Collection[str],
    work_dir: Path,
    report: Reporter | None = None,
) -> list[Path]:
    """Extract the marker's outputs into `dest/<kind>/` (logs into `dest/logs/logs<i>`).

    Each part is fetched into a temporary directory and moved into place only when
    complete, so an interrupted download never looks like a finished one; then
    `work_dir` records which job `dest` holds (`downloaded_job`). A large download
    tells `report` its bytes so far, file by file.
    """
    try:
        return _download(store, project, task, marker, dest, kinds, work_dir, report)
    except (FileExistsError, NotADirectoryError) as e:
        where = e.filename or dest
        raise StoreError(
            f"cannot download the results of task {task} into {dest}: {where} is a file, "
            "not a directory; remove it or download elsewhere (-o DIR)",
            EXIT_USAGE,
        ) from None
    except OSError as e:
        where = e.filename or dest
        if e.errno == errno.ENAMETOOLONG:
            raise StoreError(
                f"cannot download the results of task {task} into {dest}: the name is too "
                "long for the file system; download elsewhere (-o DIR)",
                EXIT_USAGE,
            ) from None
        raise StoreError(
            f"cannot download the results of task {task} into {dest}: {where}: {e.strerror}; "
            "nothing there was replaced (free some space or fix the permissions, then run again)",
            EXIT_FAILED,
        ) from None


def _download(
    store: Store,
    project: str,
    task: str,
    marker: dict[str, Any],
    dest: Path,
    kinds: Collection[str],
    work_dir: Path,
    report: Reporter | None,
) -> list[Path]:
    stamp = _stamp(work_dir, dest)
    written: list[Path] = []
    dest.mkdir(parents=True, exist_ok=True)
    job = str(marker.get("job", ""))
    outputs = marker.get("outputs") or {}
    state, logs = layout.state_prefix(project, task), layout.logs_prefix(project, task, job)
    listed = {
        "state": list(store.list(state)) if "state" in kinds else [],
        "logs": [o for o in store.list(logs) if _LOG_NAME.fullmatch(o.key[len(logs) :])]
        if "logs" in kinds
        else [],
    }
    tarballs = [outputs.get(k) for k in kinds if k in ("model", "output")]
    total = sum(int(t.get("size") or 0) for t in tarballs if isinstance(t, dict))
    total += sum(obj.size for objs in listed.values() for obj in objs)
    progress = Throttled(
        total,
        None
        if report is None
        else lambda done, whole: report(PhaseProgress(task, "downloading", done, whole)),
        min_bytes=PROGRESS_MIN_BYTES,
        interval=PROGRESS_INTERVAL,
    )
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp_name:
        tmp = Path(tmp_name)
        for kind in kinds:
            target = dest / kind
            if kind in ("model", "output"):
                info = outputs.get(kind)
                if not isinstance(info, dict):
                    raise StoreError(f"task {task} has no {kind} output in its marker")
                tarball = tmp / f"{kind}.tar.gz"
                _check_recorded(store, task, job, kind, info)
                store.get_file(str(info["key"]), tarball)
                progress.add(int(info.get("size") or 0))
                _check_size(store, task, job, kind, info, tarball)
                stamp.unlink(missing_ok=True)
                extract(tarball, target)
            elif kind == "state":
                staged = tmp / "state"
                for obj in listed["state"]:
                    rel = obj.key[len(state) :]
                    store.get_file(obj.key, local_path(staged, rel, store.uri(obj.key)))
                    progress.add(obj.size)
                staged.mkdir(exist_ok=True)
                _replace(staged, target, stamp)
            elif kind == "logs":
                staged = tmp / "logs"
                staged.mkdir()
                for obj in listed["logs"]:  # the log of no instance is not ours to fetch
                    host = _LOG_NAME.fullmatch(obj.key[len(logs) :])
                    assert host is not None
                    store.get_file(obj.key, staged / f"logs{int(host[1]) - 1}")
                    progress.add(obj.size)
                _replace(staged, target, stamp)
            _settle(target, tmp)
            written.append(target)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"dest": str(dest.resolve()), "job": job}))
    progress.finish()
    return written


def _settle(target: Path, tmp: Path) -> None:
    """Downloaded files are new files here: they get the time of their extraction
    (the store's tarballs are deterministic, stamped 1970) and, like any file the
    user creates, the permissions their umask gives (the store writes 0600)."""
    probe = tmp / ".mode"
    probe.touch()
    mode = probe.stat().st_mode & 0o777
    paths = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
    for path in paths:
        os.utime(path)
        path.chmod((path.stat().st_mode & 0o111) | mode)


def _check_recorded(store: Store, task: str, job: str, kind: str, info: dict[str, Any]) -> None:
    """The stored tarball is still the one the marker recorded when the job completed:
    same size and, where the ETag is a content hash (S3), same ETag."""
    key = str(info["key"])
    now = store.info(key)
    if now is None:
        raise StoreError(
            f"the {kind} of job {job} is missing from the store ({store.uri(key)}); "
            f"run the task again: ssmake -B {task}",
            EXIT_FAILED,
        )
    swapped = now.size != info.get("size") or (
        now.etag_is_content and info.get("etag") not in (None, now.etag)
    )
    if swapped:
        raise StoreError(
            f"refusing to download {store.uri(key)}: it is not the {kind} job {job} left "
            f"(recorded {info.get('size')} bytes, ETag {info.get('etag')}; the store holds "
            f"{now.size} bytes, ETag {now.etag}); nothing was extracted. Run the task again "
            f"(ssmake -B {task}) if the store was changed on purpose"
        )


def _check_size(
    store: Store, task: str, job: str, kind: str, info: dict[str, Any], tarball: Path
) -> None:
    size = tarball.stat().st_size
    if size != info.get("size"):
        raise StoreError(
            f"refusing to extract {store.uri(str(info['key']))}: {size} bytes arrived, the "
            f"{kind} of job {job} has {info.get('size')}; nothing was extracted (run again; "
            f"if it persists, run the task again: ssmake -B {task})"
        )


def _stamp(work_dir: Path, dest: Path) -> Path:
    key = hashlib.sha256(str(dest.resolve()).encode()).hexdigest()[:32]
    return work_dir / STAMPS / f"{key}.json"


def _replace(staged: Path, target: Path, stamp: Path) -> None:
    # Parts are replaced one by one: from the first, no job's download is complete.
    stamp.unlink(missing_ok=True)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    staged.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def downloaded_job(work_dir: Path, dest: Path) -> str | None:
    """The job whose results `dest` holds, if a download finished there."""
    try:
        job = json.loads(_stamp(work_dir, dest).read_text()).get("job")
    except (OSError, ValueError, AttributeError):
        return None
    return str(job) if job else None
