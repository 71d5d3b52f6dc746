"""The SageMaker backend: training jobs through boto3, logs from CloudWatch.

It creates what a first run needs and says so: the execution role (trusting
sagemaker.amazonaws.com, with access to the buckets its jobs use, CloudWatch
Logs and ECR read) and the account's default bucket. An interrupted `wait`
detaches: the job keeps running and `find` recognises it by name and tags.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ssmake import aws
from ssmake.backends import LOG_TAIL_LINES, JobResult, LogFn, StatusFn
from ssmake.errors import ConfigError, StoreError
from ssmake.plan.jobspec import JobSpec
from ssmake.project.model import Task
from ssmake.stores import Store

NoticeFn = Callable[[str], None]

ROLE_NAME = "ssmake-sagemaker-execution"
BASE_POLICY = "ssmake-sagemaker"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
DEFAULT_POLL_SECONDS = 5.0
LOG_LAG_SECONDS = 5.0
TERMINAL = ("Completed", "Failed", "Stopped")
# A new role takes a few seconds to become assumable by SageMaker.
ROLE_PROPAGATION_SECONDS = 60.0

_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
_BASE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ],
            "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/*",
        },
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage",
            ],
            "Resource": "*",
        },
    ],
}


def print_notice(message: str) -> None:
    print(f"ssmake: {message}", file=sys.stderr)


def _bucket_policy(bucket: str, write: bool) -> dict[str, Any]:
    actions = ["s3:GetObject"]
    if write:
        actions += ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {"Effect": "Allow", "Action": actions, "Resource": f"arn:aws:s3:::{bucket}/*"},
        ],
    }


def ensure_bucket(bucket: str, region: str | None, *, on_notice: NoticeFn = print_notice) -> bool:
    """Create `bucket` in `region` unless it exists; True when it was created."""
    s3 = aws.client("s3", region=region)
    with aws.translated(f"cannot check bucket s3://{bucket}", StoreError):
        try:
            s3.head_bucket(Bucket=bucket)
            return False
        except Exception as e:
            if aws.error_code(e) not in ("404", "NoSuchBucket"):
                if aws.error_code(e) in ("403", "AccessDenied"):
                    raise StoreError(
                        f"bucket s3://{bucket} exists but belongs to another account or "
                        "denies access to yours; name another bucket in `store`"
                    ) from None
                raise
    region = aws.resolve_region(region)
    with aws.translated(f"cannot create bucket s3://{bucket} in {region}", StoreError):
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":  # us-east-1 rejects its own name as a constraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(**kwargs)
        except Exception as e:
            if aws.error_code(e) == "BucketAlreadyOwnedByYou":
                return False
            raise
    on_notice(f"created bucket s3://{bucket} in {region}")
    return True


def default_bucket_url(region: str | None, *, on_notice: NoticeFn = print_notice) -> str:
    """`s3://sagemaker-<region>-<account>`, SageMaker's default bucket, created if missing."""
    region = aws.resolve_region(region)
    bucket = f"sagemaker-{region}-{aws.account_id(region)}"
    ensure_bucket(bucket, region, on_notice=on_notice)
    return f"s3://{bucket}"


def _host(stream: str, job: str) -> str:
    # Streams are named `<job>/algo-<i>-<epoch seconds>`.
    return stream[len(job) + 1 :].rsplit("-", 1)[0]


class _LogFollower:
    """Reads a job's CloudWatch log streams from where the last poll stopped."""

    def __init__(self, logs: Any, job: str) -> None:
        self.logs = logs
        self.job = job
        self.tokens: dict[str, str] = {}
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    def poll(self, on_log: LogFn) -> None:
        try:
            streams = self._streams()
        except Exception as e:
            if aws.error_code(e) == "ResourceNotFoundException":
                return  # no log group yet: the job has not started
            raise
        for stream in streams:
            host = _host(stream, self.job)
            while True:
                kwargs: dict[str, Any] = {
                    "logGroupName": LOG_GROUP,
                    "logStreamName": stream,
                    "startFromHead": True,
                }
                if stream in self.tokens:
                    kwargs["nextToken"] = self.tokens[stream]
                response = self.logs.get_log_events(**kwargs)
                for event in response.get("events", []):
                    line = str(event["message"]).rstrip("\n")
                    self.tail.append(line)
                    on_log(host, line)
                token = response.get("nextForwardToken")
                if not token or token == self.tokens.get(stream):
                    break
                self.tokens[stream] = token

    def _streams(self) -> list[str]:
        names: list[str] = []
        pages = self.logs.get_paginator("describe_log_streams").paginate(
            logGroupName=LOG_GROUP, logStreamNamePrefix=self.job + "/"
        )
        for page in pages:
            names.extend(s["logStreamName"] for s in page.get("logStreams", []))
        return sorted(names)


class SageMakerBackend:
    """Runs jobs as SageMaker training jobs; an interrupted wait leaves the job running."""

    name = "sagemaker"
    detaches = True

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
        self.bucket = store.bucket if store is not None else None
        self.role = role
        self.poll_seconds = poll_seconds
        #: Where "created role X"-style messages go; the CLI may route them to its reporter.
        self.on_notice: NoticeFn = print_notice
        self._role_arn: str | None = None
        self._role_created_at: float | None = None
        self._granted: set[str] = set()
        self._lock = threading.Lock()

    def _client(self, service: str) -> Any:
        return aws.client(service, region=self.region)

    # -- role ----------------------------------------------------------------

    def role_arn(self) -> str:
        with self._lock:
            if self._role_arn is None:
                self._role_arn = self._resolve_role()
            return self._role_arn

    def _resolve_role(self) -> str:
        if self.role and self.role.startswith("arn:"):
            return self.role
        iam = self._client("iam")
        name = self.role or ROLE_NAME
        with aws.translated(f"cannot read IAM role {name}"):
            try:
                arn = str(iam.get_role(RoleName=name)["Role"]["Arn"])
            except Exception as e:
                if aws.error_code(e) != "NoSuchEntity" or self.role:
                    raise
                arn = self._create_role(iam)
        if self.role is None and self.bucket is not None:
            self._grant(self.bucket, write=True)
        return arn

    def _create_role(self, iam: Any) -> str:
        with aws.translated(f"cannot create IAM role {ROLE_NAME}"):
            try:
                role = iam.create_role(
                    RoleName=ROLE_NAME,
                    AssumeRolePolicyDocument=json.dumps(_TRUST),
                    Description="Execution role for training jobs launched by ssmake",
                )["Role"]
            except Exception as e:
                if aws.error_code(e) == "EntityAlreadyExists":  # another ssmake won the race
                    return str(iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"])
                raise
            iam.put_role_policy(
                RoleName=ROLE_NAME, PolicyName=BASE_POLICY, PolicyDocument=json.dumps(_BASE)
            )
        self._role_created_at = time.monotonic()
        self.on_notice(
            f"created IAM role {ROLE_NAME} for SageMaker jobs (trusts sagemaker.amazonaws.com; "
            "CloudWatch Logs, ECR read)"
        )
        return str(role["Arn"])

    def _grant(self, bucket: str, *, write: bool) -> None:
        """Give the role access to a bucket its jobs use (an inline policy per bucket)."""
        policy = f"ssmake-s3-{bucket}" if write else f"ssmake-s3-read-{bucket}"
        if policy in self._granted or f"ssmake-s3-{bucket}" in self._granted:
            return
        iam = self._client("iam")
        with aws.translated(f"cannot give IAM role {ROLE_NAME} access to s3://{bucket}"):
            try:
                iam.get_role_policy(RoleName=ROLE_NAME, PolicyName=policy)
            except Exception as e:
                if aws.error_code(e) != "NoSuchEntity":
                    raise
                iam.put_role_policy(
                    RoleName=ROLE_NAME,
                    PolicyName=policy,
                    PolicyDocument=json.dumps(_bucket_policy(bucket, write)),
                )
                access = "read-write" if write else "read"
                self.on_notice(f"gave IAM role {ROLE_NAME} {access} access to s3://{bucket}")
        self._granted.add(policy)

    # -- jobs ----------------------------------------------------------------

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
        if self.role is None and self._role_arn is not None:
            with self._lock:
                for bucket in sorted(_input_buckets(spec) - {self.bucket}):
                    self._grant(bucket, write=False)
        sagemaker = self._client("sagemaker")
        with aws.translated(f"cannot launch training job {name}"):
            while True:
                try:
                    sagemaker.create_training_job(**spec)
                    return
                except Exception as e:
                    if not self._role_propagating(e):
                        raise
                time.sleep(5)

    def _role_propagating(self, error: Exception) -> bool:
        fresh = self._role_created_at
        return (
            aws.error_code(error) == "ValidationException"
            and "assume" in str(error).lower()
            and fresh is not None
            and time.monotonic() - fresh < ROLE_PROPAGATION_SECONDS
        )

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
        self, job: str, on_log: LogFn, on_status: StatusFn, interrupt: threading.Event
    ) -> JobResult:
        follower = _LogFollower(self._client("logs"), job)
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
                return JobResult(status, desc.get("FailureReason", ""), list(follower.tail), hosts)
            interrupt.wait(self.poll_seconds)

    def stop(self, job: str) -> None:
        if self.status(job) != "InProgress":
            return
        with aws.translated(f"cannot stop training job {job}"):
            self._client("sagemaker").stop_training_job(TrainingJobName=job)

    def find(self, project: str, task: str, fingerprint: str) -> str | None:
        """A job still running for this fingerprint: its name says task and fingerprint,
        its tags confirm project and full fingerprint. (A Stopping job is not reused.)"""
        sagemaker = self._client("sagemaker")
        wanted = {"ssmake:project": project, "ssmake:task": task, "ssmake:fingerprint": fingerprint}
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
