"""In-flight records: one job per task at a time, across ssmake processes.

`<project>/<task>/inflight.json` names the job a process runs for the task, and
that process (host, pid, its start time, a nonce). It is created with a
conditional put, so of two processes only one wins; the other:

- waits while the owner runs, then plans again (the task is usually up to date);
- takes the record over when the owner is gone (dead pid, or a reused one):
  claimants race for a second conditional key named after the record's bytes,
  and the winner alone has the backend clean up after the dead job (the local
  backend stops its orphaned workers and keeps the state they wrote) and deletes
  the record;
- on a backend whose jobs outlive ssmake (SageMaker), reattaches to a launched
  job of the same fingerprint instead of launching another, and adopts its
  result when it already ended; the backend's `find` catches a running job
  whose record was lost.

A write whose answer was lost (a reset after S3 applied it) is recognised by its
nonce when the retry is refused. A record the process itself left behind in an
earlier build (its deletion failed) is told from a live one by the nonces the
process still holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ssmake.backends import Backend
from ssmake.errors import KeyNotFound, StoreError, TaskFailed
from ssmake.events import Notice, Reporter
from ssmake.plan import layout
from ssmake.plan.records import inflight_problem
from ssmake.stores import Store

POLL_SECONDS = 0.5


class Retry(Exception):
    """Another process ran this task meanwhile: plan it again."""


@dataclass
class Claim:
    """The in-flight record a run holds, and the job it stands for."""

    job: str
    #: What the record holds now, to delete it only while it is still ours.
    record: bytes
    nonce: str = ""
    #: The job was launched before this run (by another ssmake, or a detached one).
    adopted: bool = False
    #: The job runs on its own (on a backend whose jobs outlive ssmake).
    launched: bool = False


class InflightRecords:
    """Claims and releases the in-flight records of one project's tasks."""

    def __init__(self, store: Store, backend: Backend, project: str, report: Reporter) -> None:
        self.store = store
        self.backend = backend
        self.project = project
        self.report = report

    def claim(
        self,
        task: str,
        key: str,
        fingerprint: str,
        next_attempt: Callable[[], int],
        interrupt: threading.Event,
    ) -> Claim:
        """Record the job about to run (named `<task>-<fp>-<attempt>`), or adopt one
        launched already; raises Retry after waiting for another process."""
        floor = 0
        while True:
            job = layout.job_name(task, fingerprint, max(next_attempt(), floor + 1))
            mine = _owner_record(job, fingerprint, self.backend.name)
            with _held(str(json.loads(mine)["nonce"])) as held:
                raw = mine if self.store.put_if_absent(key, mine) else self._read(key)
                if raw == mine:  # ours (also when the answer was lost and a retry refused)
                    claim = Claim(job, mine, held.keep())
                    try:
                        running = self.backend.find(self.project, task, fingerprint)
                        if running is not None:
                            self.report(Notice(f"reattaching to job {running}", task))
                            claim.job, claim.adopted = running, True
                            self.mark_launched(key, claim)
                    except BaseException:
                        self.release(task, key, claim)
                        raise
                    return claim
            if raw is None:
                continue  # released meanwhile
            current = _parse_record(raw)
            if current is not None and self._launched_here(current):
                other = str(current.get("job"))
                if current.get("fingerprint") == fingerprint:
                    self.report(Notice(f"reattaching to job {other}", task))
                    return Claim(other, raw, adopted=True, launched=True)
                if self.backend.find(self.project, task, str(current.get("fingerprint"))):
                    raise TaskFailed(
                        f"task {task}: job {other}, launched for an earlier version of the "
                        f"task, still runs on {self.backend.name}; wait for it to end or "
                        f"stop it (ssmake cancel {task}), then run again"
                    )
                self._take_over(task, key, raw, current, interrupt)
                continue
            if current is None or not _alive(current):
                if current is not None and current.get("fingerprint") == fingerprint:
                    floor = max(floor, _attempt_of(current))  # never reuse its name
                self._take_over(task, key, raw, current, interrupt)
                continue
            self.report(
                Notice(
                    f"job {current.get('job')} of this task is running "
                    f"(ssmake pid {current.get('pid')} on {current.get('host')}); "
                    "waiting for it",
                    task,
                )
            )
            self._wait_for_change(key, raw, current, interrupt)
            raise Retry

    def mark_launched(self, key: str, claim: Claim) -> None:
        """Say in the record that its job runs on its own now, so that whoever comes
        next reattaches to it rather than waits for this process."""
        record = {**json.loads(claim.record), "job": claim.job, "launched": True}
        claim.record = json.dumps(record).encode()
        self.store.put(key, claim.record)
        claim.launched = True

    def detach(self, claim: Claim) -> None:
        """Leave the record of a launched job in place (it runs on; the next ssmake
        reattaches to it), and stop holding it."""
        _release_nonce(claim.nonce)

    def release(self, task: str, key: str, claim: Claim) -> None:
        """Delete the record (unless another took its place). A failure to is reported,
        never raised: it must not hide why the run ended, and the next claimant takes
        the record over."""
        try:
            if self._read(key) == claim.record:
                self.store.delete(key)
        except StoreError as e:
            self.report(
                Notice(
                    f"could not remove the in-flight record ({e.message}); "
                    "the next run takes it over",
                    task,
                )
            )
        finally:
            _release_nonce(claim.nonce)

    def _launched_here(self, record: Mapping[str, Any]) -> bool:
        """Whether a record names a job launched on this backend that outlives ssmake."""
        return (
            self.backend.detaches
            and record.get("backend") == self.backend.name
            and record.get("launched") is True
        )

    def _read(self, key: str) -> bytes | None:
        try:
            return self.store.get(key)
        except KeyNotFound:
            return None

    def _wait_for_change(
        self,
        key: str,
        raw: bytes,
        owner: Mapping[str, Any] | None,
        interrupt: threading.Event,
    ) -> None:
        """Poll until `key` no longer holds `raw`, or `owner` (of it, or of the
        takeover of it) died."""
        while self._read(key) == raw and (owner is None or _alive(owner)):
            if interrupt.wait(POLL_SECONDS):
                raise KeyboardInterrupt

    def _take_over(
        self,
        task: str,
        key: str,
        raw: bytes,
        dead: Mapping[str, Any] | None,
        interrupt: threading.Event,
    ) -> None:
        """Clean up after the dead job in `raw` and delete its record, as one claimant.

        The claimants race for a key named after the record's bytes (a conditional
        put); the winner checks the record is still the same, has the backend clean
        up after the job, then deletes the record. A loser waits until it changes.
        """
        lock = f"{key.removesuffix('.json')}-takeover-{hashlib.sha256(raw).hexdigest()[:16]}.json"
        mine = _owner_record(str((dead or {}).get("job", "")), "", self.backend.name)
        with _held(str(json.loads(mine)["nonce"])):
            if not self.store.put_if_absent(lock, mine) and self._read(lock) != mine:
                holder = _parse_record(self._read(lock) or b"")
                if holder is not None and not _alive(holder):
                    self.store.delete(lock)  # the claimant taking over died too
                    return
                self._wait_for_change(key, raw, holder, interrupt)
                return
            try:
                if self._read(key) != raw:
                    return
                job = str((dead or {}).get("job") or "")
                what = "a damaged in-flight record (not JSON, or not of a record's shape)"
                if dead is not None:
                    what = (
                        f"job {job} of ssmake pid {dead.get('pid')} on {dead.get('host')}, "
                        "which no longer runs it"
                    )
                recover = getattr(self.backend, "recover", None)
                if job and recover is not None and (dead or {}).get("backend") == self.backend.name:
                    what += f": {recover(job)}"
                self.report(Notice(f"taking over from {what}", task))
                self.store.delete(key)
            finally:
                self.store.delete(lock)


# The nonces of the records this process holds: a record naming this process but
# none of them is a leftover of an earlier build here (the API, `watch`).
_nonces: set[str] = set()
_nonces_lock = threading.Lock()


class _held:
    """Holds `nonce` while the block runs, and after it only when `keep()` was called."""

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        self.kept = False

    def __enter__(self) -> _held:
        with _nonces_lock:
            _nonces.add(self.nonce)
        return self

    def keep(self) -> str:
        self.kept = True
        return self.nonce

    def __exit__(self, *exc: object) -> None:
        if not self.kept:
            _release_nonce(self.nonce)


def _release_nonce(nonce: str) -> None:
    with _nonces_lock:
        _nonces.discard(nonce)


def _owner_record(job: str, fingerprint: str, backend: str) -> bytes:
    """Who holds a claim: enough to tell later whether that process still runs."""
    record = {
        "job": job,
        "fingerprint": fingerprint,
        "host": _hostname(),
        "pid": os.getpid(),
        "started": _process_start(os.getpid()),
        "backend": backend,
        "time": time.time(),
        "nonce": os.urandom(16).hex(),  # tells our own write from any other
    }
    return json.dumps(record).encode()


def _parse_record(raw: bytes) -> dict[str, Any] | None:
    """The record, or None when it is not JSON or not of a record's shape (`{}`, no
    `host`): taken over like a dead one, never waited for."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if inflight_problem(record) is None else None


def _attempt_of(record: Mapping[str, Any] | None) -> int:
    tail = str((record or {}).get("job", "")).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _process_start(pid: int) -> str | None:
    """When `pid` started, in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def holder_alive(record: Mapping[str, Any]) -> bool:
    """Whether the ssmake process that wrote an in-flight record may still run."""
    return _alive(record)


def _alive(record: Mapping[str, Any]) -> bool:
    """Whether the ssmake process holding a record may still run (when unsure: yes)."""
    if record.get("host") != _hostname():
        return True
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        with _nonces_lock:
            return record.get("nonce") in _nonces
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = record.get("started")
    now = _process_start(pid)
    # A different start time: the pid was reused by another process.
    return started is None or now is None or started == now


def _hostname() -> str:
    """This machine's name, as socket.gethostname() gives it (both are uname's
    nodename), without importing socket on every build's path."""
    return os.uname().nodename
