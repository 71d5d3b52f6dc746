"""JobSpec: plain data shaped like SageMaker's CreateTrainingJob request.

The SageMaker backend sends it as is; the local backend executes the same spec.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ssmake.project.matrix import slug
from ssmake.project.model import Task

JobSpec = dict[str, Any]

STATE_LOCAL_PATH = "/state"
LOCAL_ROLE = "arn:aws:iam::000000000000:role/ssmake-local"


@dataclass(frozen=True)
class Channel:
    name: str
    uri: str
    distribution: str


def build_job_spec(
    task: Task,
    *,
    project: str,
    job_name: str,
    fingerprint: str,
    entry_point: str,
    code_uri: str,
    output_uri: str,
    state_uri: str,
    channels: list[Channel],
    image_uri: str,
    role_arn: str,
    region: str | None,
) -> JobSpec:
    """The CreateTrainingJob request that runs one job of `task`."""
    # Every value JSON-encoded, as the SageMaker SDK's estimators send them.
    hyperparameters = {k: json.dumps(v) for k, v in task.hyperparameters.items()}
    distribution = distribution_hyperparameters(task.distribution, task.instance_type)
    hyperparameters.update({k: json.dumps(v) for k, v in distribution.items()})
    hyperparameters.update(
        sagemaker_program=json.dumps(entry_point),
        sagemaker_submit_directory=json.dumps(code_uri),
        sagemaker_container_log_level=json.dumps(20),
        sagemaker_job_name=json.dumps(job_name),
    )
    if region:
        hyperparameters["sagemaker_region"] = json.dumps(region)
    algorithm: dict[str, Any] = {"TrainingImage": image_uri, "TrainingInputMode": "File"}
    if task.metrics:
        algorithm["MetricDefinitions"] = [
            {"Name": name, "Regex": regex} for name, regex in task.metrics.items()
        ]
    if task.enable_metrics:
        algorithm["EnableSageMakerMetricsTimeSeries"] = True
    max_run = task.max_run_mins * 60
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": max_run}
    if task.spot:
        stopping["MaxWaitTimeInSeconds"] = max(task.max_wait_mins * 60, max_run)
    environment = dict(task.environment)
    environment["SSM_STATE_DIR"] = STATE_LOCAL_PATH
    tags = [
        {"Key": "ssmake:project", "Value": project},
        # A tag value allows no brackets or commas: an expansion is tagged by its slug.
        {"Key": "ssmake:task", "Value": slug(task.name)},
        {"Key": "ssmake:fingerprint", "Value": fingerprint},
    ]
    tags.extend({"Key": k, "Value": v} for k, v in task.tags.items())
    spec: JobSpec = {
        "TrainingJobName": job_name,
        "HyperParameters": hyperparameters,
        "AlgorithmSpecification": algorithm,
        "RoleArn": role_arn,
        "InputDataConfig": [
            {
                "ChannelName": ch.name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": ch.uri,
                        "S3DataDistributionType": ch.distribution,
                    }
                },
                "InputMode": "File",
            }
            for ch in channels
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {
            "InstanceType": task.instance_type,
            "InstanceCount": task.instance_count,
            "VolumeSizeInGB": task.volume_size,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": task.spot,
        "CheckpointConfig": {"S3Uri": state_uri, "LocalPath": STATE_LOCAL_PATH},
        "Environment": environment,
        "Tags": tags,
    }
    if not channels:
        # CreateTrainingJob rejects an empty list: a job without inputs has none.
        del spec["InputDataConfig"]
    return spec


def distribution_hyperparameters(
    distribution: Mapping[str, Mapping[str, object]], instance_type: str
) -> dict[str, object]:
    """The hyperparameters the SageMaker SDK's PyTorch estimator adds for `distribution`
    (`_pytorch_distribution_configuration`, `_distribution_configuration`)."""
    out: dict[str, object] = {}
    if "torch_distributed" in distribution or "pytorchddp" in distribution:
        torch = "torch_distributed" in distribution
        settings = distribution["torch_distributed" if torch else "pytorchddp"]
        if settings.get("enabled", False):
            flag = (
                "sagemaker_torch_distributed_enabled" if torch else "sagemaker_pytorch_ddp_enabled"
            )
            out[flag] = True
            out["sagemaker_instance_type"] = instance_type
    elif "mpi" in distribution:
        mpi = distribution["mpi"]
        out["sagemaker_mpi_enabled"] = mpi.get("enabled", False)
        if mpi.get("processes_per_host"):
            out["sagemaker_mpi_num_of_processes_per_host"] = mpi["processes_per_host"]
        out["sagemaker_mpi_custom_mpi_options"] = mpi.get("custom_mpi_options", "")
    return out


def with_region(spec: JobSpec, region: str) -> JobSpec:
    """`spec` with `region` as its sagemaker_region hyperparameter, unless it has one: the
    SDK always sends it, and the toolkit reads it (SAGEMAKER_REGION)."""
    hyperparameters = spec.get("HyperParameters", {})
    if "sagemaker_region" in hyperparameters:
        return spec
    return {**spec, "HyperParameters": {**hyperparameters, "sagemaker_region": json.dumps(region)}}


def sagemaker_param(spec: JobSpec, name: str) -> str:
    raw = spec["HyperParameters"][name]
    try:
        value = json.loads(raw)
    except ValueError:
        return str(raw)
    return str(value)
