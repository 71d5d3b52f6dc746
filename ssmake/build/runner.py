"""Running one stale task: stage code and inputs, launch, verify, mark, download."""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from ssmake.backends import Backend, JobResult
from ssmake.build.downloads import download_results, downloaded_job
from ssmake.build.failures import job_failed, user_paths
from ssmake.build.inflight import Claim, InflightRecords, Retry
from ssmake.build.spot_check import SPOT_WITHOUT_STATE, mentions_state
from ssmake.build.staging import Stager
from ssmake.errors import RequirementsFailed, TaskCancelled, TaskFailed
from ssmake.events import (
    JobLaunched,
    JobStatus,
    LogLine,
    Notice,
    PhaseProgress,
    Reporter,
    TaskRestored,
)
from ssmake.plan import layout
from ssmake.plan.cost import Costing, costing_for
from ssmake.plan.fingerprint import SCHEMA_VERSION, Fingerprint
from ssmake.plan.hashcache import sha256_path
from ssmake.plan.jobspec import build_job_spec
from ssmake.plan.planner import Marker, Planner
from ssmake.project.model import Project, Task
from ssmake.stores import Store
from ssmake.stores.local import LocalStore, translated_os_error

ImageResolver = Callable[[Task], str]


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
        costing: Costing | None = None,
    ) -> None:
        self.project = project
        self.store = store
        self.backend = backend
        self.planner = planner
        self.report = reporter
        self.image_resolver = image_resolver
        self._failed = functools.partial(job_failed, store, project.name, backend=backend.name)
        self.work_dir = work_dir
        self.costing = costing or costing_for(project, os.environ)
        self.inflight = InflightRecords(store, backend, project.name, reporter)
        self.stager = Stager(project, store, reporter, work_dir)

    def _attempt(self, task: Task, fingerprint: str) -> int:
        stem = layout.job_name(task.name, fingerprint, 0)[:-1]
        prefix = layout.task_prefix(self.project.name, task.name) + stem
        # One level of the store, the jobs of this fingerprint, not every file of every
        # job the task ever ran.
        attempts = [int(tail) for tail in self.store.names(prefix) if tail.isdigit()]
        return max(attempts, default=0) + 1

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
            if not info.etag_is_content:
                outputs[kind]["sha256"] = self._stored_sha256(key)
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

    def _stored_sha256(self, key: str) -> str:
        """The sha256 of a stored object (a local store's ETags are not content)."""
        if isinstance(self.store, LocalStore):
            with translated_os_error(f"read {self.store.uri(key)}"):
                return sha256_path(self.store.file(key))
        fd, name = tempfile.mkstemp(dir=self.work_dir, suffix=".sha")
        os.close(fd)
        try:
            self.store.get_file(key, Path(name))
            return sha256_path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def write_marker(
        self,
        task: Task,
        fp: Fingerprint,
        job: str,
        outputs: Mapping[str, Any],
        started: float,
        billing: Mapping[str, Any] | None = None,
    ) -> Marker:
        """The run record, then the marker: written last, so it only exists for a
        verified success."""
        from ssmake.version import __version__

        marker: Marker = {
            "ssmake": __version__,
            "schema": SCHEMA_VERSION,
            "project": self.project.name,
            "task": task.name,
            "fingerprint": fp.value,
            "components": fp.components,
            "job": job,
            "outputs": dict(outputs),
            # The state a downstream receives: a restore must find it unchanged.
            "state": self.planner.state_listing(task.name)
            if self.planner.state_consumed(task.name)
            else None,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "duration": round(time.time() - started, 3),
        }
        if billing is not None:
            marker["billing"] = dict(billing)
        data = json.dumps(marker, indent=1, sort_keys=True).encode()
        self.store.put(layout.run_record_key(self.project.name, task.name, fp.value), data)
        self.store.put(layout.marker_key(self.project.name, task.name), data)
        return marker

    def restore(self, task: Task, fp: Fingerprint) -> Marker:
        record = self.planner.read_run_record(task.name, fp.value)
        assert record is not None
        data = json.dumps(record, indent=1, sort_keys=True).encode()
        self.store.put(layout.marker_key(self.project.name, task.name), data)
        self.store.delete(layout.failure_key(self.project.name, task.name))
        self.report(TaskRestored(task.name, str(record.get("job"))))
        return record

    def download(self, task: Task, marker: Marker) -> None:
        if not task.download or not task.output_path:
            return
        dest = self.planner.fingerprinter.resolve(task.output_path)
        if downloaded_job(self.work_dir, dest) == marker.get("job") and all(
            (dest / kind).exists() for kind in task.download
        ):
            return
        download_results(
            self.store,
            self.project.name,
            task.name,
            marker,
            dest,
            task.download,
            self.work_dir,
            self.report,
        )
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
        snapshot = fp.snapshot
        assert snapshot is not None, "a task is only run from the snapshot it was planned on"
        if task.spot and self.backend.name == "sagemaker":
            code = [Path(e.path) for e in snapshot.code.values()]
            if not mentions_state(code):
                self.report(Notice(SPOT_WITHOUT_STATE, task.name))
        inflight_key = layout.inflight_key(self.project.name, task.name)
        seen = self.planner.read_marker(task.name)
        claim = self.inflight.claim(
            task.name, inflight_key, fp.value, lambda: self._attempt(task, fp.value), interrupt
        )
        job = claim.job
        try:
            if claim.adopted:
                result = self.follow(task, job, interrupt)
                if result.status in ("Failed", "Stopped") and not interrupt.is_set():
                    # It ended without a result: run the task again, afresh.
                    self.report(
                        Notice(f"job {job} {result.status.lower()}; running it again", task.name)
                    )
                    raise Retry
            else:
                latest = self.planner.read_marker(task.name)
                if latest != seen and latest is not None and latest.get("fingerprint") == fp.value:
                    # Another ssmake ran this fingerprint and let go of its claim between
                    # our plan and our claim: its result stands, a run would duplicate it.
                    raise Retry
                try:
                    result = self._launch(task, fp, job, upstream, inflight_key, claim, interrupt)
                except RequirementsFailed as e:
                    what = f"failed: {task.requirements or 'requirements.txt'}: {e.message}"
                    raise self._failed(task, fp.value, job, what, e.log_tail) from e
            if result.status != "Completed":
                if interrupt.is_set():
                    raise KeyboardInterrupt
                if result.status == "Stopped" and result.failure_reason.startswith("cancelled"):
                    raise TaskCancelled(f"job {job} {result.failure_reason}; no marker written")
                message = f"{result.status.lower()}: {result.failure_reason}"
                raise self._failed(task, fp.value, job, message, result.log_tail)
            outputs = self._verify(task, job, result.hosts)
            billing = self.costing.bill(
                task,
                wall_seconds=time.time() - started,
                training_seconds=result.training_seconds,
                billable_seconds=result.billable_seconds,
            )
            marker = self.write_marker(task, fp, job, outputs, started, billing)
            self.store.delete(layout.failure_key(self.project.name, task.name))
        finally:
            if interrupt.is_set() and claim.launched:
                self.inflight.detach(claim)
            else:
                self.inflight.release(task.name, inflight_key, claim)
        self.download(task, marker)
        return marker

    def _launch(
        self,
        task: Task,
        fp: Fingerprint,
        job: str,
        upstream: Mapping[str, Marker | None],
        inflight_key: str,
        claim: Claim,
        interrupt: threading.Event,
    ) -> JobResult:
        """Stage the code and inputs, launch the job and follow it to its end."""
        snapshot = fp.snapshot
        assert snapshot is not None
        code_uri, channels = self.stager.stage(task, snapshot, upstream)
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
        if self.backend.detaches:
            self.inflight.mark_launched(inflight_key, claim)
        return self.follow(task, job, interrupt)

    def follow(self, task: Task, job: str, interrupt: threading.Event) -> JobResult:
        """Wait for a launched job, reporting its log lines, and keep the logs in the
        store beside its outputs (`<job>/logs/algo-<i>.log`) when the backend did not
        (SageMaker's stay in CloudWatch), so that `logs` and downloads work alike."""
        shown = user_paths(task, job)
        # The lines as told, kept only where the backend does not keep them itself.
        logs_dir = (
            None
            if self.backend.stores_logs
            else Path(tempfile.mkdtemp(dir=self.work_dir, prefix=f"logs-{job}-"))
        )
        files: dict[str, IO[str]] = {}

        def on_log(host: str, line: str) -> None:
            if logs_dir is not None:
                if host not in files:
                    files[host] = (logs_dir / f"{host}.log").open("a")
                files[host].write(line + "\n")
            self.report(LogLine(task.name, host, shown(line)))

        try:
            result = self.backend.wait(
                job,
                on_log,
                lambda message: self.report(JobStatus(task.name, job, message)),
                interrupt,
                lambda phase, done, total: self.report(
                    PhaseProgress(task.name, phase, done, total)
                ),
            )
            for f in files.values():
                f.close()  # before uploading; closing again below is harmless
            prefix = layout.logs_prefix(self.project.name, task.name, job)
            if (
                logs_dir is not None
                and result.status != "Detached"
                and not any(True for _ in self.store.list(prefix))
            ):
                for path in sorted(logs_dir.glob("*.log")):
                    self.store.put_file(prefix + path.name, path)
        finally:
            for f in files.values():
                f.close()
            if logs_dir is not None:
                shutil.rmtree(logs_dir, ignore_errors=True)
        return result
