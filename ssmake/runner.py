"""Running one stale task: stage code and inputs, launch, verify, mark, download."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import worker_toolkit
from ssmake import layout
from ssmake.archive import pack_code
from ssmake.backends import Backend
from ssmake.downloads import download_results, downloaded_job
from ssmake.errors import KeyNotFound, TaskFailed
from ssmake.events import JobLaunched, JobStatus, LogLine, Notice, Reporter, TaskRestored
from ssmake.executor import JobResult, describe_local_failure
from ssmake.fingerprint import SCHEMA_VERSION, Fingerprint
from ssmake.hashcache import sha256_path
from ssmake.jobspec import Channel, build_job_spec
from ssmake.model import Project, Task
from ssmake.planner import Marker, Planner
from ssmake.store import Store

ImageResolver = Callable[[Task], str]


def worker_toolkit_files() -> dict[str, Path]:
    """worker_toolkit's own files, packed into every job's code."""
    package = Path(worker_toolkit.__file__).parent
    return {
        f"worker_toolkit/{p.name}": p
        for p in sorted(package.iterdir())
        if p.suffix in (".py", ".typed")
    }


def default_image(task: Task) -> str:
    """The image name recorded for a local job (the local interpreter runs it)."""
    if task.image.uri:
        return task.image.uri
    version = f":{task.framework_version}" if task.framework_version else ""
    return f"local/{task.framework}{version}"


class TaskRunner:
    """Everything with side effects that one task's job needs."""

    def __init__(
        self,
        project: Project,
        store: Store,
        backend: Backend,
        planner: Planner,
        reporter: Reporter,
        *,
        image_resolver: ImageResolver = default_image,
        work_dir: Path,
    ) -> None:
        self.project = project
        self.store = store
        self.backend = backend
        self.planner = planner
        self.report = reporter
        self.image_resolver = image_resolver
        self.work_dir = work_dir

    # -- staging -------------------------------------------------------------

    def stage_code(self, task: Task) -> str:
        """Upload the content-addressed code tarball (once) and return its URI."""
        files = dict(self.planner.fingerprinter.code_files(task))
        for name, path in worker_toolkit_files().items():
            files.setdefault(name, path)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.work_dir, suffix=".tar.gz")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            pack_code(tmp, sorted(files.items()))
            key = layout.code_key(self.project.name, task.name, sha256_path(tmp))
            if not self.store.exists(key):
                self.store.put_file(key, tmp)
        finally:
            tmp.unlink(missing_ok=True)
        return self.store.uri(key)

    def channels(self, task: Task, upstream: Mapping[str, Marker | None]) -> list[Channel]:
        out: list[Channel] = []
        for inp in task.inputs:
            if inp.path is not None:
                prefix = layout.input_prefix(self.project.name, task.name) + inp.name + "/"
                files = self.planner.fingerprinter.files_under(
                    self.planner.fingerprinter.resolve(inp.path)
                )
                stats = self.store.sync_dir(Path(inp.path), prefix, files)
                if stats.uploaded or stats.deleted:
                    self.report(
                        Notice(
                            f"input {inp.name}: {stats.uploaded} uploaded "
                            f"({stats.uploaded_bytes} bytes), {stats.deleted} deleted, "
                            f"{stats.unchanged} unchanged",
                            task.name,
                        )
                    )
                out.append(Channel(inp.name, self.store.uri(prefix), inp.distribution))
            elif inp.s3 is not None:
                out.append(Channel(inp.name, inp.s3, inp.distribution))
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

    def _attempt(self, task: Task, fingerprint: str) -> int:
        stem = layout.job_name(task.name, fingerprint, 0)[:-1]
        prefix = layout.task_prefix(self.project.name, task.name) + stem
        attempts = [0]
        for obj in self.store.list(prefix):
            tail = obj.key[len(prefix) :].split("/", 1)[0]
            if tail.isdigit():
                attempts.append(int(tail))
        return max(attempts) + 1

    # -- results -------------------------------------------------------------

    def _verify(self, task: Task, job: str, hosts: list[str]) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        for kind, key in (
            ("model", layout.model_key(self.project.name, task.name, job)),
            ("output", layout.output_key(self.project.name, task.name, job)),
        ):
            info = self.store.info(key)
            if info is None:
                raise TaskFailed(f"task {task.name}: job {job} left no {kind}.tar.gz ({key})")
            outputs[kind] = {"key": key, "etag": info.etag, "size": info.size}
        if task.completion == "marked":
            state = layout.state_prefix(self.project.name, task.name)
            missing = []
            for host in hosts:
                try:
                    content = self.store.get(f"{state}{host}/__COMPLETED__").decode().strip()
                except Exception:
                    content = ""
                if content != job:
                    missing.append(host)
            if missing:
                raise TaskFailed(
                    f"task {task.name}: job {job} ended, but {', '.join(missing)} did not call "
                    "worker_lib.markCompleted(args), and the task's completion is 'marked'"
                )
        return outputs

    def write_marker(
        self, task: Task, fp: Fingerprint, job: str, outputs: Mapping[str, Any], started: float
    ) -> Marker:
        """The run record, then the marker: written last, so it only exists for a
        verified success."""
        from ssmake import __version__

        marker: Marker = {
            "ssmake": __version__,
            "schema": SCHEMA_VERSION,
            "project": self.project.name,
            "task": task.name,
            "fingerprint": fp.value,
            "components": fp.components,
            "job": job,
            "outputs": dict(outputs),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "duration": round(time.time() - started, 3),
        }
        data = json.dumps(marker, indent=1, sort_keys=True).encode()
        self.store.put(layout.run_record_key(self.project.name, task.name, fp.value), data)
        self.store.put(layout.marker_key(self.project.name, task.name), data)
        return marker

    def restore(self, task: Task, fp: Fingerprint) -> Marker:
        record = self.planner.read_run_record(task.name, fp.value)
        assert record is not None
        data = json.dumps(record, indent=1, sort_keys=True).encode()
        self.store.put(layout.marker_key(self.project.name, task.name), data)
        self.report(TaskRestored(task.name, str(record.get("job"))))
        return record

    def download(self, task: Task, marker: Marker) -> None:
        if not task.download or not task.output_path:
            return
        dest = self.planner.fingerprinter.resolve(task.output_path)
        if downloaded_job(dest) == marker.get("job") and all(
            (dest / kind).exists() for kind in task.download
        ):
            return
        download_results(self.store, self.project.name, task.name, marker, dest, task.download)
        self.report(Notice(f"downloaded {', '.join(task.download)} to {dest}", task.name))

    # -- running -------------------------------------------------------------

    def run(
        self,
        task: Task,
        fp: Fingerprint,
        upstream: Mapping[str, Marker | None],
        interrupt: threading.Event,
    ) -> Marker:
        """Run one job of `task`; returns the new marker or raises TaskFailed."""
        started = time.time()
        inflight_key = layout.inflight_key(self.project.name, task.name)
        seen = self.planner.read_marker(task.name)
        job = self._claim(task, fp, inflight_key, interrupt)
        latest = self.planner.read_marker(task.name)
        if latest != seen and latest is not None and latest.get("fingerprint") == fp.value:
            # Another ssmake ran this fingerprint and let go of its claim between our
            # plan and our claim: its result stands, running again would duplicate it.
            self.store.delete(inflight_key)
            raise _Retry
        try:
            code_uri = self.stage_code(task)
            channels = self.channels(task, upstream)
            base = layout.task_prefix(self.project.name, task.name)
            spec = build_job_spec(
                task,
                project=self.project.name,
                job_name=job,
                fingerprint=fp.value,
                entry_point=self.planner.fingerprinter.entry_name(task),
                code_uri=code_uri,
                output_uri=self.store.uri(base),
                state_uri=self.store.uri(layout.state_prefix(self.project.name, task.name)),
                channels=channels,
                image_uri=self.image_resolver(task),
                role_arn=self.backend.role_arn(),
                region=self.project.region,
            )
            self.backend.launch(spec)
            self.report(JobLaunched(task.name, job, self.backend.name))
            result = self.follow(task, job, interrupt)
            if result.status != "Completed":
                if interrupt.is_set():
                    raise KeyboardInterrupt
                raise TaskFailed(
                    f"task {task.name}: job {job} {result.status.lower()}: "
                    + describe_local_failure(result)
                )
            outputs = self._verify(task, job, result.hosts)
            marker = self.write_marker(task, fp, job, outputs, started)
        finally:
            if not (interrupt.is_set() and self.backend.detaches):
                self.store.delete(inflight_key)
        self.download(task, marker)
        return marker

    def follow(self, task: Task, job: str, interrupt: threading.Event) -> JobResult:
        """Wait for a launched job, reporting its log lines, and keep the logs in the
        store beside its outputs (`<job>/logs/algo-<i>.log`) when the backend did not
        (SageMaker's stay in CloudWatch), so that `logs` and downloads work alike."""
        logs_dir = Path(tempfile.mkdtemp(dir=self.work_dir, prefix=f"logs-{job}-"))
        files: dict[str, IO[str]] = {}

        def on_log(host: str, line: str) -> None:
            if host not in files:
                files[host] = (logs_dir / f"{host}.log").open("a")
            files[host].write(line + "\n")
            self.report(LogLine(task.name, host, line))

        try:
            result = self.backend.wait(
                job,
                on_log,
                lambda message: self.report(JobStatus(task.name, job, message)),
                interrupt,
            )
            for f in files.values():
                f.close()
            prefix = layout.logs_prefix(self.project.name, task.name, job)
            if result.status != "Detached" and not any(True for _ in self.store.list(prefix)):
                for path in sorted(logs_dir.glob("*.log")):
                    self.store.put_file(prefix + path.name, path)
        finally:
            for f in files.values():
                f.close()
            shutil.rmtree(logs_dir, ignore_errors=True)
        return result

    def _claim(self, task: Task, fp: Fingerprint, key: str, interrupt: threading.Event) -> str:
        """Record the job about to run: one in flight per task across ssmake processes.

        A record whose ssmake process is gone is taken over by exactly one claimant,
        which cleans up after the dead job (see `_take_over`) before claiming.
        """
        floor = 0
        while True:
            attempt = max(self._attempt(task, fp.value), floor + 1)
            job = layout.job_name(task.name, fp.value, attempt)
            if self.store.put_if_absent(key, _owner_record(job, fp.value, self.backend.name)):
                return job
            raw = self._read(key)
            if raw is None:
                continue  # released meanwhile
            current = _parse_record(raw)
            if current is None or not _alive(current):
                if current is not None and current.get("fingerprint") == fp.value:
                    floor = max(floor, _attempt_of(current))  # never reuse its name
                self._take_over(task, key, raw, current, interrupt)
                continue
            self.report(
                Notice(
                    f"job {current.get('job')} of this task is running "
                    f"(ssmake pid {current.get('pid')} on {current.get('host')}); "
                    "waiting for it",
                    task.name,
                )
            )
            self._wait_for_change(key, raw, current, interrupt)
            raise _Retry

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
        """Poll until `key` no longer holds `raw`, or its owner died."""
        while self._read(key) == raw and (owner is None or _alive(owner)):
            if interrupt.wait(CLAIM_POLL_SECONDS):
                raise KeyboardInterrupt

    def _take_over(
        self,
        task: Task,
        key: str,
        raw: bytes,
        dead: Mapping[str, Any] | None,
        interrupt: threading.Event,
    ) -> None:
        """Clean up after the dead job in `raw` and release its record, as one claimant.

        The claimants race for a key named after the record's bytes (a conditional
        put); the winner checks the record is still the same, has the backend stop
        what the dead job left running and keep the state it wrote, then deletes the
        record. A loser waits until the record changes.
        """
        lock = f"{key.removesuffix('.json')}-takeover-{hashlib.sha256(raw).hexdigest()[:16]}.json"
        mine = _owner_record(str((dead or {}).get("job", "")), "", self.backend.name)
        if not self.store.put_if_absent(lock, mine):
            holder = _parse_record(self._read(lock) or b"")
            if holder is not None and not _alive(holder):
                self.store.delete(lock)  # the claimant taking over died too
                return
            self._wait_for_change(key, raw, None, interrupt)
            return
        try:
            if self._read(key) != raw:
                return
            job = str((dead or {}).get("job") or "")
            what = "an unreadable in-flight record"
            if dead is not None:
                what = (
                    f"job {job} of ssmake pid {dead.get('pid')} on {dead.get('host')}, "
                    "which is gone"
                )
            recover = getattr(self.backend, "recover", None)
            if job and recover is not None and (dead or {}).get("backend") == self.backend.name:
                what += f": {recover(job)}"
            self.report(Notice(f"taking over from {what}", task.name))
            self.store.delete(key)
        finally:
            self.store.delete(lock)


CLAIM_POLL_SECONDS = 0.5


class _Retry(Exception):
    """Another process ran this task meanwhile: plan it again."""


def _owner_record(job: str, fingerprint: str, backend: str) -> bytes:
    """Who holds a claim: enough to tell later whether that process still runs."""
    record = {
        "job": job,
        "fingerprint": fingerprint,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": _process_start(os.getpid()),
        "backend": backend,
        "time": time.time(),
    }
    return json.dumps(record).encode()


def _parse_record(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


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


def _alive(record: Mapping[str, Any]) -> bool:
    """Whether the ssmake process holding a claim may still run (when unsure: yes)."""
    if record.get("backend") != "local":
        return True
    if record.get("host") != socket.gethostname():
        return True
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
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
