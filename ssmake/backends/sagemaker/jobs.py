"""The SageMaker backend: training jobs through boto3, logs from CloudWatch.

It creates what a first run needs and says so (see `roles`). An interrupted
`wait` detaches: the job keeps running and `find` recognises it by name and tags.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ssmake import aws
from ssmake.backends import JobResult, LogFn, ProgressFn, StatusFn
from ssmake.backends.sagemaker.logs import LogFollower
from ssmake.backends.sagemaker.roles import ExecutionRole, NoticeFn, print_notice
from ssmake.errors import ConfigError
from ssmake.plan.jobspec import JobSpec, with_region
from ssmake.project.matrix import slug
from ssmake.project.model import Task
from ssmake.stores import Store

DEFAULT_POLL_SECONDS = 5.0
LOG_LAG_SECONDS = 5.0
TERMINAL = ("Completed", "Failed", "Stopped")


class SageMakerBackend:
    """Runs jobs as SageMaker training jobs; an interrupted wait leaves the job running."""

    name = "sagemaker"
    detaches = True
    stores_logs = False  # they stay in CloudWatch
    #: SageMaker's own, between SIGTERM and SIGKILL in a stopped job's containers.
    grace_seconds = 120.0

    def __init__(
        self,
        *,
        region: str | None = None,
        store: Store | None = None,
        role: str | None = None,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        from ssmake.stores.s3 import S3Store

        if store is not None and not isinstance(store, S3Store):
            raise ConfigError(
                f"the sagemaker backend needs an S3 store, not {store.url}: set "
                'store = "s3://BUCKET[/PREFIX]" under [project] in Ssmfile.toml, or leave '
                "it unset to use the account's default bucket"
            )
        self.region = region
        self.poll_seconds = poll_seconds
        #: Where "created role X"-style messages go; the CLI may route them to its reporter.
        self.on_notice: NoticeFn = print_notice
        bucket = store.bucket if store is not None else None
        # Notices go where on_notice points when they happen, not at construction.
        self._role = ExecutionRole(
            lambda: self._client("iam"), role, bucket, lambda message: self.on_notice(message)
        )

    def _client(self, service: str) -> Any:
        return aws.client(service, region=self.region)

    def role_arn(self) -> str:
        return self._role.arn()

    def image_for(self, task: Task) -> str:
        """The task's image: its explicit URI, else the SageMaker framework image."""
        if task.image.uri:
            return task.image.uri
        try:
            from sagemaker import image_uris
        except ImportError:
            raise ConfigError(
                f"task {task.name}: finding the {task.framework} image needs the sagemaker "
                "package: pip install 'ssmake[sagemaker]', or set image = { uri = \"...\" }"
            ) from None
        try:
            return str(
                image_uris.retrieve(
                    framework=task.framework,
                    region=aws.resolve_region(self.region),
                    version=task.framework_version,
                    py_version=task.python_version,
                    instance_type=task.instance_type,
                    image_scope="training",
                )
            )
        except ValueError as e:
            raise ConfigError(f"task {task.name}: no SageMaker {task.framework} image: {e}") from e

    def launch(self, spec: JobSpec) -> None:
        name = str(spec["TrainingJobName"])
        spec = with_region(spec, aws.resolve_region(self.region))
        self._role.grant_reading(_input_buckets(spec))
        sagemaker = self._client("sagemaker")
        with aws.translated(f"cannot launch training job {name}"):
            while True:
                try:
                    sagemaker.create_training_job(**spec)
                    return
                except Exception as e:
                    if not self._role.propagating(e):
                        raise
                time.sleep(5)

    def describe(self, job: str) -> dict[str, Any]:
        with aws.translated(f"cannot describe training job {job}"):
            response: dict[str, Any] = self._client("sagemaker").describe_training_job(
                TrainingJobName=job
            )
        return response

    def status(self, job: str) -> str | None:
        """The job's TrainingJobStatus, or None when there is no such job."""
        with aws.translated(f"cannot describe training job {job}"):
            try:
                return str(
                    self._client("sagemaker").describe_training_job(TrainingJobName=job)[
                        "TrainingJobStatus"
                    ]
                )
            except Exception as e:
                if aws.error_code(e) == "ValidationException" and "find" in str(e).lower():
                    return None
                raise

    def wait(
        self,
        job: str,
        on_log: LogFn,
        on_status: StatusFn,
        interrupt: threading.Event,
        on_progress: ProgressFn | None = None,
    ) -> JobResult:
        # SageMaker copies the inputs on its own instances: no progress of ours to tell.
        follower = LogFollower(self._client("logs"), job)
        reported = 0
        status = ""
        followed_live = False
        while True:
            if interrupt.is_set():
                on_status(f"detached; {job} keeps running (ssmake reattaches next time)")
                return JobResult("Detached")
            desc = self.describe(job)
            if desc["TrainingJobStatus"] != status:
                status = desc["TrainingJobStatus"]
                if status not in TERMINAL:
                    followed_live = True
                    on_status(status)
            transitions = desc.get("SecondaryStatusTransitions", [])
            for step in transitions[reported:]:
                message = step.get("StatusMessage", "")
                on_status(f"{step['Status']}: {message}" if message else step["Status"])
            reported = max(reported, len(transitions))
            if status in TERMINAL and followed_live:
                # CloudWatch lags a little behind the job: the last lines (a failing
                # job's traceback) arrive after the status changed.
                interrupt.wait(min(self.poll_seconds, LOG_LAG_SECONDS))
            with aws.translated(f"cannot read the CloudWatch logs of {job}"):
                follower.poll(on_log)
            if status in TERMINAL:
                on_status(_summary(desc))
                count = int(desc["ResourceConfig"]["InstanceCount"])
                hosts = [f"algo-{i}" for i in range(1, count + 1)]
                return JobResult(
                    status,
                    desc.get("FailureReason", ""),
                    list(follower.tail),
                    hosts,
                    training_seconds=desc.get("TrainingTimeInSeconds"),
                    billable_seconds=desc.get("BillableTimeInSeconds"),
                )
            interrupt.wait(self.poll_seconds)

    def stop(self, job: str) -> None:
        if self.status(job) != "InProgress":
            return
        with aws.translated(f"cannot stop training job {job}"):
            self._client("sagemaker").stop_training_job(TrainingJobName=job)

    def kill(self) -> None:
        """Nothing to end: an interrupted build detaches from its jobs."""

    def find(self, project: str, task: str, fingerprint: str) -> str | None:
        """A job still running for this fingerprint: its name says task and fingerprint,
        its tags confirm project and full fingerprint. (A Stopping job is not reused.)"""
        sagemaker = self._client("sagemaker")
        wanted = {
            "ssmake:project": project,
            "ssmake:task": slug(task),
            "ssmake:fingerprint": fingerprint,
        }
        with aws.translated(f"cannot list the training jobs of task {task}"):
            pages = sagemaker.get_paginator("list_training_jobs").paginate(
                NameContains=f"-{fingerprint[:10]}-",
                StatusEquals="InProgress",
                SortBy="CreationTime",
                SortOrder="Descending",
            )
            for page in pages:
                for summary in page.get("TrainingJobSummaries", []):
                    tags = sagemaker.list_tags(ResourceArn=summary["TrainingJobArn"])["Tags"]
                    found = {t["Key"]: t["Value"] for t in tags}
                    if all(found.get(k) == v for k, v in wanted.items()):
                        return str(summary["TrainingJobName"])
        return None


def _input_buckets(spec: JobSpec) -> set[str]:
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in spec.get("InputDataConfig", [])]
    return {u.removeprefix("s3://").split("/", 1)[0] for u in uris if u.startswith("s3://")}


def _summary(desc: dict[str, Any]) -> str:
    status = str(desc["TrainingJobStatus"])
    if status == "Failed":
        return f"Failed: {desc.get('FailureReason', 'no reason given')}"
    billable = desc.get("BillableTimeInSeconds")
    if billable is None:
        return status
    total = desc.get("TrainingTimeInSeconds") or billable
    saved = f", {100 * (1 - billable / total):.0f}% saved by spot" if total > billable else ""
    return f"{status}: {billable} billable seconds{saved}"
