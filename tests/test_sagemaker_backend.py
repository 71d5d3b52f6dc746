"""The SageMaker backend against moto, with the emulator running the jobs for real."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ssmake.backends.sagemaker.jobs import SageMakerBackend
from ssmake.backends.sagemaker.roles import ROLE_NAME, default_bucket_url
from ssmake.errors import BackendError, ConfigError
from ssmake.plan import layout
from ssmake.plan.jobspec import Channel, build_job_spec
from ssmake.project.model import Task
from ssmake.stores.archive import pack_code
from ssmake.stores.local import LocalStore
from ssmake.stores.s3 import S3Store

if TYPE_CHECKING:
    from aws_fixtures import AwsEnv, SageMakerEmulator
    from conftest import ProjectDir

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1"
ROLE_ARN = f"arn:aws:iam::123456789012:role/{ROLE_NAME}"

CHAIN = f"""
[project]
name = "demo"
backend = "sagemaker"
store = "s3://bucket"
region = "us-east-1"

[defaults]
source_dir = "code"
image = {{ uri = "{IMAGE}" }}

[tasks.prepare]
entry_point = "prepare.py"
instance_count = 2
inputs.data = {{ path = "data", distribution = "ShardedByS3Key" }}
hyperparameters = {{ epochs = 3, name = "first run" }}
metrics = {{ loss = "loss=(.*?);" }}
enable_metrics = true
environment = {{ MY_FLAG = "1" }}
tags = {{ team = "ml" }}

[tasks.train]
entry_point = "train.py"
inputs.prepared = {{ task = "prepare", output = "model" }}
spot = false
max_run_mins = 30
download = ["output", "logs"]
output_path = "out/train"
"""

PREPARE = """
import os
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
mine = sorted(p.name for p in Path(args.input_data).iterdir())
Path(args.model_dir, f"seen-{args.current_host}.txt").write_text(",".join(mine))
Path(args.state, f"ran-{args.current_host}").write_text(os.environ["MY_FLAG"])
print(f"loss=0.5; host {args.current_host} saw {mine}")
"""

TRAIN = """
import tarfile
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
with tarfile.open(Path(args.input_prepared) / "model.tar.gz") as tar:
    names = sorted(m.name for m in tar.getmembers() if m.isfile())
    seen = sorted(tar.extractfile(n).read().decode() for n in names)
Path(args.output_data_dir, "trained.txt").write_text(" | ".join(names + seen))
"""


def make_chain(project: ProjectDir, ssmfile: str = CHAIN) -> None:
    project.ssmfile(ssmfile)
    project.write("code/prepare.py", PREPARE)
    project.write("code/train.py", TRAIN)
    for i in range(4):
        project.write(f"data/file{i}.txt", f"data {i}\n")


def s3_keys(aws: AwsEnv, bucket: str) -> list[str]:
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def s3_json(aws: AwsEnv, bucket: str, key: str) -> Any:
    return json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def s3_tar(aws: AwsEnv, bucket: str, key: str) -> dict[str, bytes]:
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_chain_runs_on_sagemaker_through_s3(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    make_chain(project)

    result = project.run()

    assert result.code == 0, result.err
    assert f"created IAM role {ROLE_NAME}" in result.err
    assert "gave IAM role" in result.err and "s3://bucket" in result.err
    prepare, train = sagemaker_emulator.requests
    marker = s3_json(aws, "bucket", "demo/prepare/ssmake.json")
    job = marker["job"]
    assert prepare["TrainingJobName"] == job == layout.job_name("prepare", marker["fingerprint"], 1)

    # The request as sent, every task key mapped.
    hps = prepare["HyperParameters"]
    assert json.loads(hps["epochs"]) == 3 and json.loads(hps["name"]) == "first run"
    assert json.loads(hps["sagemaker_program"]) == "prepare.py"
    code_uri = json.loads(hps["sagemaker_submit_directory"])
    assert code_uri.startswith("s3://bucket/demo/prepare/code/") and code_uri.endswith(".tar.gz")
    assert json.loads(hps["sagemaker_region"]) == "us-east-1"
    assert json.loads(hps["sagemaker_job_name"]) == job
    assert prepare["AlgorithmSpecification"] == {
        "TrainingImage": IMAGE,
        "TrainingInputMode": "File",
        "MetricDefinitions": [{"Name": "loss", "Regex": "loss=(.*?);"}],
        "EnableSageMakerMetricsTimeSeries": True,
    }
    assert prepare["RoleArn"] == ROLE_ARN
    [channel] = prepare["InputDataConfig"]
    assert channel["ChannelName"] == "data"
    assert channel["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": "s3://bucket/demo/prepare/input/data/",
        "S3DataDistributionType": "ShardedByS3Key",
    }
    assert prepare["OutputDataConfig"] == {"S3OutputPath": "s3://bucket/demo/prepare/"}
    assert prepare["CheckpointConfig"] == {
        "S3Uri": "s3://bucket/demo/prepare/state/",
        "LocalPath": "/state",
    }
    assert prepare["ResourceConfig"] == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 2,
        "VolumeSizeInGB": 30,
    }
    assert prepare["EnableManagedSpotTraining"] is True
    assert prepare["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 86400,
        "MaxWaitTimeInSeconds": 86400,
    }
    assert prepare["Environment"] == {"MY_FLAG": "1", "SSM_STATE_DIR": "/state"}
    tags = {t["Key"]: t["Value"] for t in prepare["Tags"]}
    assert tags == {
        "ssmake:project": "demo",
        "ssmake:task": "prepare",
        "ssmake:fingerprint": marker["fingerprint"],
        "team": "ml",
    }
    assert train["EnableManagedSpotTraining"] is False
    assert train["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}
    [upstream] = train["InputDataConfig"]
    assert upstream["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://bucket/demo/prepare/{job}/output/model.tar.gz"
    )

    # DESIGN's layout in the bucket.
    keys = s3_keys(aws, "bucket")
    sha = code_uri.rsplit("/", 1)[1]
    for key in (
        "demo/prepare/ssmake.json",
        f"demo/prepare/runs/{marker['fingerprint']}.json",
        f"demo/prepare/code/{sha}",
        f"demo/prepare/{job}/output/model.tar.gz",
        f"demo/prepare/{job}/output/output.tar.gz",
        "demo/prepare/state/ran-algo-1",
        "demo/prepare/state/ran-algo-2",
        "demo/train/ssmake.json",
    ):
        assert key in keys
    assert [k for k in keys if k.startswith("demo/prepare/input/")] == [
        "demo/prepare/input/data.ssmake-sync.json",  # the sync manifest, beside the channel
        *(f"demo/prepare/input/data/file{i}.txt" for i in range(4)),
    ]
    assert not any(k.endswith("inflight.json") for k in keys)
    assert marker["outputs"]["model"]["key"] == f"demo/prepare/{job}/output/model.tar.gz"

    # The data went through S3: sharded input, merged model, the next job read it.
    model = s3_tar(aws, "bucket", f"demo/prepare/{job}/output/model.tar.gz")
    assert sorted(model) == ["seen-algo-1.txt", "seen-algo-2.txt"]
    seen = b",".join(model.values()).decode().split(",")
    assert sorted(seen) == [f"file{i}.txt" for i in range(4)]
    train_marker = s3_json(aws, "bucket", "demo/train/ssmake.json")
    trained = s3_tar(aws, "bucket", train_marker["outputs"]["output"]["key"])
    assert trained["trained.txt"].decode().startswith("seen-algo-1.txt | seen-algo-2.txt | ")
    # The log lines came back from CloudWatch, and are kept beside the outputs.
    assert "host algo-2 saw" in result.err
    prepare_job = s3_json(aws, "bucket", "demo/prepare/ssmake.json")["job"]
    log_key = f"demo/prepare/{prepare_job}/logs/algo-2.log"
    log = aws.client("s3").get_object(Bucket="bucket", Key=log_key)["Body"].read()
    assert b"host algo-2 saw" in log
    assert (project.root / "out/train/logs/logs0").is_file()
    assert (project.root / "out/train/output/trained.txt").is_file()

    # What moto recorded agrees, and the role trusts SageMaker.
    described = aws.client("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["TrainingJobStatus"] == "Completed"
    assert described["HyperParameters"] == hps
    role = aws.client("iam").get_role(RoleName=ROLE_NAME)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    policy = aws.client("iam").get_role_policy(RoleName=ROLE_NAME, PolicyName="ssmake-s3-bucket")
    assert "arn:aws:s3:::bucket/*" in json.dumps(policy["PolicyDocument"])

    again = project.run()

    assert again.code == 0, again.err
    assert len(sagemaker_emulator.requests) == 2
    assert "launched job" not in again.err
    assert "created" not in again.err


def test_default_bucket_is_created_on_first_use(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator
) -> None:
    make_chain(project, CHAIN.replace('store = "s3://bucket"\n', ""))

    result = project.run("prepare")

    assert result.code == 0, result.err
    bucket = f"sagemaker-us-east-1-{aws.account}"
    assert f"created bucket s3://{bucket} in us-east-1" in result.err
    assert "demo/prepare/ssmake.json" in s3_keys(aws, bucket)
    assert sagemaker_emulator.requests[0]["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{bucket}/demo/prepare/"
    }
    assert default_bucket_url("us-east-1") == f"s3://{bucket}"


def test_failed_job_reports_the_failure_reason(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    project.ssmfile(
        f"""
        [project]
        name = "demo"
        backend = "sagemaker"
        store = "s3://bucket"
        [tasks.boom]
        entry_point = "boom.py"
        image = {{ uri = "{IMAGE}" }}
        inputs.data = {{ path = "data" }}
        """
    )
    project.write("boom.py", "print('about to fail')\nraise SystemExit(3)\n")
    project.write("data/x.txt", "x")

    result = project.run()

    assert result.code == 1
    assert "algo-1 failed with exit code 3" in result.err
    assert "about to fail" in result.err
    assert not any(k.endswith("ssmake.json") for k in s3_keys(aws, "bucket"))


def test_missing_region_says_where_to_set_it(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(BackendError, match=r"no AWS region .* under \[project\] in Ssmfile"):
        default_bucket_url(None)


def test_sagemaker_backend_needs_an_s3_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs an S3 store"):
        SageMakerBackend(store=LocalStore(tmp_path))


# -- the backend on its own: find, detach, reattach, stop ---------------------

WORKER = "print('working on', __import__('os').environ['SM_CURRENT_HOST'])\n"


def held_spec(aws: AwsEnv, tmp_path: Path, backend: SageMakerBackend, fingerprint: str) -> Any:
    store = S3Store("bucket")
    (tmp_path / "worker.py").write_text(WORKER)
    tarball = tmp_path / "code.tar.gz"
    pack_code(tarball, [("worker.py", tmp_path / "worker.py")])
    store.put_file("demo/work/code/c.tar.gz", tarball)
    store.put("demo/work/input/data/x.txt", b"x")
    task = Task(name="work", entry_point="worker.py", instance_count=2)
    return build_job_spec(
        task,
        project="demo",
        job_name=layout.job_name("work", fingerprint, 1),
        fingerprint=fingerprint,
        entry_point="worker.py",
        code_uri=store.uri("demo/work/code/c.tar.gz"),
        output_uri=store.uri("demo/work/"),
        state_uri=store.uri("demo/work/state/"),
        channels=[Channel("data", store.uri("demo/work/input/data/"), "FullyReplicated")],
        image_uri=IMAGE,
        role_arn=backend.role_arn(),
        region="us-east-1",
    )


def test_detach_find_and_reattach(
    aws: AwsEnv, sagemaker_emulator: SageMakerEmulator, tmp_path: Path
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    notices: list[str] = []
    backend = SageMakerBackend(region="us-east-1", store=S3Store("bucket"), poll_seconds=0.05)
    backend.on_notice = notices.append
    fingerprint = "ab" * 32
    spec = held_spec(aws, tmp_path, backend, fingerprint)
    job = spec["TrainingJobName"]
    assert notices[0].startswith(f"created IAM role {ROLE_NAME}")
    sagemaker_emulator.hold = True

    backend.launch(spec)

    assert backend.find("demo", "work", fingerprint) == job
    assert backend.find("demo", "work", "cd" * 32) is None
    assert backend.find("other", "work", fingerprint) is None
    interrupted = threading.Event()
    interrupted.set()
    detached = backend.wait(job, lambda h, line: None, lambda s: None, interrupted)
    assert detached.status == "Detached"
    assert backend.describe(job)["TrainingJobStatus"] == "InProgress"

    # A new ssmake (a new backend) reattaches and follows the job to its end.
    again = SageMakerBackend(region="us-east-1", store=S3Store("bucket"), poll_seconds=0.05)
    again.on_notice = notices.append
    lines: list[tuple[str, str]] = []
    statuses: list[str] = []
    results: list[Any] = []
    follower = threading.Thread(
        target=lambda: results.append(
            again.wait(
                job,
                lambda host, line: lines.append((host, line)),
                statuses.append,
                threading.Event(),
            )
        )
    )
    follower.start()
    sagemaker_emulator.release(job)
    follower.join(timeout=30)

    [result] = results
    assert result.status == "Completed"
    assert result.hosts == ["algo-1", "algo-2"]
    assert ("algo-2", "working on algo-2") in lines
    assert "InProgress" in statuses and statuses[-1] == "Completed"
    assert any(s.startswith("Training") for s in statuses)
    assert backend.find("demo", "work", fingerprint) is None
    assert backend.status(job) == "Completed"
    assert backend.status("work-0000000000-1") is None
    assert len(sagemaker_emulator.requests) == 1
    assert len(notices) == 2  # role created once, bucket granted once


def test_stop_ends_a_running_job(
    aws: AwsEnv, sagemaker_emulator: SageMakerEmulator, tmp_path: Path
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    backend = SageMakerBackend(region="us-east-1", store=S3Store("bucket"), poll_seconds=0.05)
    backend.on_notice = lambda message: None
    spec = held_spec(aws, tmp_path, backend, "ef" * 32)
    sagemaker_emulator.hold = True
    backend.launch(spec)

    backend.stop(spec["TrainingJobName"])

    result = backend.wait(
        spec["TrainingJobName"], lambda h, x: None, lambda s: None, threading.Event()
    )
    assert result.status == "Stopped"
    backend.stop(spec["TrainingJobName"])  # stopping a stopped job is a no-op
