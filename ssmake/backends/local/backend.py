"""The local backend: each job runs on this machine through the LocalExecutor."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from ssmake import aws
from ssmake.backends import JobResult, LogFn, ProgressFn, StatusFn
from ssmake.backends.local.executor import LocalExecutor
from ssmake.backends.local.supervise import (
    CANCELLED_FILE,
    job_process_groups,
    recover_abandoned,
    stop_grace_seconds,
)
from ssmake.errors import BackendError
from ssmake.images.resolve import is_local_label
from ssmake.plan.jobspec import JobSpec, with_region


class LocalBackend:
    """Runs jobs as processes; an interrupted job is stopped, never left behind."""

    name = "local"
    detaches = False
    stores_logs = True  # collect.upload_results, whatever the job's end

    def __init__(self, *, work_dir: Path, grace_seconds: float | None = None) -> None:
        self.work_dir = work_dir
        self.grace_seconds = stop_grace_seconds(grace_seconds)
        self._jobs: dict[str, LocalExecutor] = {}
        self._logs: dict[str, LogFn] = {}
        self._progress: dict[str, ProgressFn] = {}
        # The last progress of each job's staging, told again to a late wait().
        self._last_progress: dict[str, tuple[str, int, int]] = {}
        self._progress_lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._results: dict[str, JobResult] = {}
        self._errors: dict[str, BaseException] = {}

    def role_arn(self) -> str:
        return "arn:aws:iam::000000000000:role/ssmake-local"

    def launch(self, spec: JobSpec) -> None:
        name = str(spec["TrainingJobName"])
        if name in self._jobs:
            raise BackendError(f"job {name} was already launched")

        def on_log(host: str, line: str) -> None:
            forward = self._logs.get(name)
            if forward is not None:
                forward(host, line)

        def on_progress(phase: str, done: int, total: int) -> None:
            with self._progress_lock:
                self._last_progress[name] = (phase, done, total)
                forward = self._progress.get(name)
                if forward is not None:
                    forward(phase, done, total)

        image = str(spec["AlgorithmSpecification"]["TrainingImage"])
        region = _configured_region()
        if region is not None:
            spec = with_region(spec, region)
        executor = LocalExecutor(
            spec,
            self.work_dir / "runs" / name,
            venv_cache=self.work_dir / "venvs",
            on_log=on_log,
            on_progress=on_progress,
            grace_seconds=self.grace_seconds,
            # A `local/…` label means the local interpreter; anything else is an image
            # to run in (the image service gives one only with local_docker = true).
            docker_image=None if is_local_label(image) else image,
        )
        self._jobs[name] = executor

        def run() -> None:
            try:
                self._results[name] = executor.run()
            except BaseException as e:  # re-raised in wait(), on the caller's thread
                self._errors[name] = e

        thread = threading.Thread(target=run, name=f"job-{name}", daemon=True)
        self._threads[name] = thread
        thread.start()

    def wait(
        self,
        job: str,
        on_log: LogFn,
        on_status: StatusFn,
        interrupt: threading.Event,
        on_progress: ProgressFn | None = None,
    ) -> JobResult:
        self._logs[job] = on_log
        with self._progress_lock:
            if on_progress is not None:
                self._progress[job] = on_progress
                last = self._last_progress.get(job)
                if last is not None:  # the staging began before this wait
                    on_progress(*last)
        thread = self._threads[job]
        on_status("running")
        while thread.is_alive():
            if interrupt.is_set():
                self._jobs[job].stop("interrupted")
            thread.join(timeout=0.1)
        with self._progress_lock:
            self._progress.pop(job, None)
            self._last_progress.pop(job, None)
        if job in self._errors:
            raise self._errors.pop(job)
        return self._results.pop(job)

    def stop(self, job: str) -> None:
        executor = self._jobs.get(job)
        if executor is not None:
            executor.stop()
            return
        # Launched by another ssmake process (`ssmake cancel`): SIGTERM its instances;
        # their ssmake sees them end, stops the rest, writes no marker and, finding
        # the note left here, reports the job cancelled.
        run_dir = self.work_dir / "runs" / job
        groups = job_process_groups(run_dir, job)
        if groups:
            (run_dir / CANCELLED_FILE).touch()
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        for executor in list(self._jobs.values()):
            executor.kill()

    def find(self, project: str, task: str, fingerprint: str) -> str | None:
        return None

    def recover(self, job: str) -> str:
        """Clean up after `job`, launched by an ssmake process that died: stop its
        orphaned instances, keep the state they wrote. Returns what was done."""
        return recover_abandoned(self.work_dir / "runs" / job, grace_seconds=self.grace_seconds)


def _configured_region() -> str | None:
    """The region AWS's configuration names, if any: a local job needs none, but
    SageMaker's containers are told theirs (sagemaker_region). boto3 finds a region
    only in the environment or in the config file, so without either it is not
    imported (about 90 ms of every local build's start)."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(name):
            return os.environ[name]
    config = os.environ.get("AWS_CONFIG_FILE") or os.path.join("~", ".aws", "config")
    if not os.path.exists(os.path.expanduser(config)):
        return None
    try:
        return aws.resolve_region(None)
    except BackendError:
        return None
