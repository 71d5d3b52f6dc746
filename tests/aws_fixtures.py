"""AWS for tests: a moto server on 127.0.0.1 and an emulator that makes its jobs real.

moto accepts training jobs and runs nothing. The `sagemaker_emulator` fixture
hooks botocore's events on the clients ssmake creates: it records each
CreateTrainingJob request as sent, runs the job through the LocalExecutor
against moto's S3 (which uploads its model, output and state there), posts the
job's log lines to moto's CloudWatch Logs and sets the job's final status in
moto, all before `create_training_job` returns. With `hold = True` a created job
stays InProgress until `release(job)`; StopTrainingJob (not in moto) stops it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ssmake import aws as ssmake_aws
from ssmake.backends import JobResult
from ssmake.backends.local.executor import LocalExecutor
from ssmake.plan.jobspec import JobSpec
from ssmake.stores.s3 import S3Store

__all__ = ["AwsEnv", "SageMakerEmulator", "aws", "moto_server", "sagemaker_emulator"]

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 and a free port, for the whole test session."""
    from moto.server import ThreadedMotoServer

    # One access-log line per request would drown any failure's output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class AwsEnv:
    """The moto endpoint the environment points boto3 at, and plain clients for it."""

    endpoint: str
    region: str = REGION
    account: str = ACCOUNT

    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """A plain boto3 client for moto (not ssmake's: no emulator hooks on it)."""
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(
                service,
                region_name=self.region,
                endpoint_url=self.endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._clients[service]

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsEnv]:
    """Fake credentials and AWS_ENDPOINT_URL pointing at a freshly reset moto server."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    # Without credentials botocore would ask the EC2 metadata service: no network.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    env = AwsEnv(moto_server)
    env.reset()
    yield env


class SageMakerEmulator:
    """Runs the jobs created on moto; see the module docstring."""

    def __init__(self, env: AwsEnv, work: Path) -> None:
        self.env = env
        self.work = work
        #: CreateTrainingJob requests as sent, in order.
        self.requests: list[JobSpec] = []
        self.results: dict[str, JobResult] = {}
        self.logs: dict[str, list[tuple[str, str]]] = {}
        #: When set, created jobs stay InProgress until `release`.
        self.hold = False
        #: (TrainingTimeInSeconds, BillableTimeInSeconds) a completed job reports.
        self.times: tuple[int, int] | None = None
        self._specs: dict[str, JobSpec] = {}

    def _moto_job(self, job: str) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[self.env.account][self.env.region].training_jobs[job]

    def _set_status(self, job: str, status: str, secondary: str, message: str = "") -> None:
        from moto.core.utils import utcnow

        fake = self._moto_job(job)
        fake.training_job_status = status
        fake.secondary_status = secondary
        fake.secondary_status_transitions.append(
            {"Status": secondary, "StartTime": utcnow(), "StatusMessage": message}
        )
        if status == "Failed":
            fake.failure_reason = message

    # -- botocore event handlers ----------------------------------------------

    def record(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["emulator_spec"] = copy.deepcopy(params)

    def created(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300 or "emulator_spec" not in context:
            return
        spec: JobSpec = context["emulator_spec"]
        job = str(spec["TrainingJobName"])
        self.requests.append(spec)
        self._specs[job] = spec
        self._set_status(job, "InProgress", "Training", "Training image download completed")
        if not self.hold:
            self.release(job)

    def stop_requested(self, params: dict[str, Any], **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        job = json.loads(params["body"])["TrainingJobName"]  # the serialized request
        if self._moto_job(job).training_job_status == "InProgress":
            self._set_status(job, "Stopped", "Stopped", "Stopped by the user")
            self.results[job] = JobResult("Stopped", "Stopped by the user")
        return AWSResponse(self.env.endpoint, 200, {}, None), {}

    # -- running ---------------------------------------------------------------

    def release(self, job: str) -> JobResult:
        """Run a created job to its end, as SageMaker would have."""
        lines: list[tuple[str, str]] = []
        executor = LocalExecutor(
            self._specs[job],
            self.work / "runs" / job,
            venv_cache=self.work / "venvs",
            on_log=lambda host, line: lines.append((host, line)),
            grace_seconds=2,
        )
        result = executor.run()
        # SageMaker keeps logs in CloudWatch only; the executor also stored them.
        spec = self._specs[job]
        output = spec["OutputDataConfig"]["S3OutputPath"].rstrip("/") + "/"
        bucket, _, prefix = output.removeprefix("s3://").partition("/")
        S3Store(bucket).delete_prefix(f"{prefix}{job}/logs/")
        self.results[job] = result
        self.logs[job] = lines
        self._post_logs(job, lines)
        if result.status == "Completed":
            self._set_status(job, "Completed", "Completed", "Training job completed")
            if self.times is not None:
                fake = self._moto_job(job)
                fake.training_time_in_seconds, fake.billable_time_in_seconds = self.times
        else:
            self._set_status(job, result.status, result.status, result.failure_reason)
        return result

    def _post_logs(self, job: str, lines: list[tuple[str, str]]) -> None:
        logs = self.env.client("logs")
        try:
            logs.create_log_group(logGroupName=LOG_GROUP)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        now = int(time.time() * 1000)
        for host in sorted({h for h, _ in lines}):
            stream = f"{job}/{host}-{now // 1000}"
            logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
            # CloudWatch Logs refuses empty messages.
            events = [
                {"timestamp": now + i, "message": line}
                for i, (h, line) in enumerate(lines)
                if h == host and line
            ]
            logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events)


@pytest.fixture
def sagemaker_emulator(
    aws: AwsEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SageMakerEmulator]:
    """Jobs created on the moto server really run (see SageMakerEmulator)."""
    emulator = SageMakerEmulator(aws, tmp_path_factory.mktemp("sagemaker"))
    removers = [
        ssmake_aws.add_event_hook(
            "before-parameter-build.sagemaker.CreateTrainingJob", emulator.record
        ),
        ssmake_aws.add_event_hook("after-call.sagemaker.CreateTrainingJob", emulator.created),
        ssmake_aws.add_event_hook("before-call.sagemaker.StopTrainingJob", emulator.stop_requested),
    ]
    yield emulator
    for remove in removers:
        remove()
