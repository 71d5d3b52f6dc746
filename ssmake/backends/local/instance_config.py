"""One local instance's `input/config` files and environment, as SageMaker gives them.

`write_config` writes the files SageMaker writes into a training container;
`environment` reads them back and derives the worker's variables from them as
AWS's `sagemaker-training` toolkit does (`training_env`), adding what the
PyTorch container sets (MASTER_ADDR, MASTER_PORT, NCCL_*) and ssmake's own
(SSM_STATE_DIR). Where a value differs from SageMaker's, it is for a reason
of running on one machine, listed in docs/api.md.
"""

from __future__ import annotations

import json
import os
from pathlib import PurePath
from typing import Any

from ssmake.backends.local.instances import Instance
from ssmake.backends.local.training_env import (
    DEFAULT_GROUP,
    cmd_args,
    sm_variables,
    split_hyperparameters,
    this_machine,
    toolkit_variables,
    training_env,
)
from ssmake.plan.jobspec import JobSpec

# algo-1 does not resolve on this machine: every instance finds the master here.
MASTER_ADDR = "127.0.0.1"
# The network interface the instances share on one machine (SageMaker's is eth0).
NETWORK_INTERFACE = "lo"
_CONFIG_FILES = ("hyperparameters.json", "resourceconfig.json", "inputdataconfig.json")


def write_config(
    spec: JobSpec, inst: Instance, hosts: list[str], *, code_dir: PurePath | None = None
) -> None:
    """The instance's `input/config` files. `code_dir` is where the job finds its code
    (inside a container: /opt/ml/code); hyperparameters.json names it as
    sagemaker_submit_directory, where SageMaker names the code's S3 tarball, since
    the code is already extracted there."""
    config = inst.base / "input" / "config"
    hps = dict(spec.get("HyperParameters", {}))
    hps["sagemaker_submit_directory"] = json.dumps(str(code_dir or inst.base / "code"))
    instance_type = str(spec["ResourceConfig"]["InstanceType"])
    resource = {
        "current_host": inst.host,
        "current_instance_type": instance_type,
        "current_group_name": DEFAULT_GROUP,
        "hosts": hosts,
        "instance_groups": [
            {
                "instance_group_name": DEFAULT_GROUP,
                "instance_type": instance_type,
                "hosts": hosts,
            }
        ],
        "network_interface_name": NETWORK_INTERFACE,
    }
    data_config = {
        c["ChannelName"]: {
            "TrainingInputMode": "File",
            "S3DistributionType": c["DataSource"]["S3DataSource"]["S3DataDistributionType"],
            "RecordWrapperType": "None",
        }
        for c in spec.get("InputDataConfig", [])
    }
    # The request as the job sees it, without its Environment (it may hold secrets,
    # and this file outlives the job in the run directory).
    job_config = {k: v for k, v in spec.items() if k not in ("Environment", "Tags")}
    job_config["HyperParameters"] = hps
    files: dict[str, Any] = {
        "hyperparameters.json": hps,
        "resourceconfig.json": resource,
        "inputdataconfig.json": data_config,
        "trainingjobconfig.json": job_config,
    }
    checkpoint = spec.get("CheckpointConfig")
    if checkpoint:
        files["checkpointconfig.json"] = checkpoint
    for name, doc in files.items():
        (config / name).write_text(json.dumps(doc, indent=2))


def read_config(inst: Instance) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(hyperparameters, resource config, input data config) as written for `inst`."""
    config = inst.base / "input" / "config"
    docs = [json.loads((config / name).read_text()) for name in _CONFIG_FILES]
    return docs[0], docs[1], docs[2]


def environment(
    spec: JobSpec,
    inst: Instance,
    *,
    gpus: list[str],
    master_port: int,
    base: PurePath | None = None,
    state: PurePath | None = None,
    inherit: bool = True,
) -> dict[str, str]:
    """The instance's variables, from its config files; `base`/`state` are where its
    directories appear to the job (inside a container: /opt/ml and /state), `gpus` its
    share of this machine's, `inherit` adds ours."""
    hps, resource, data_config = read_config(inst)
    base = inst.base if base is None else base
    state = base / "state" if state is None else state
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")} if inherit else {}
    env.update(spec.get("Environment", {}))
    env["TRAINING_JOB_NAME"] = str(spec["TrainingJobName"])
    machine = this_machine(str(resource["current_instance_type"]), len(gpus))
    toolkit_env = training_env(base, resource, data_config, hps, env, machine)
    env.update(sm_variables(toolkit_env))
    env.update(toolkit_variables(resource, hps))
    if inherit:
        # As the toolkit's interpreter has it; an image keeps its own PYTHONPATH.
        code = str(base / "code")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (code, env.get("PYTHONPATH")) if p)
    env.update(
        {
            # What the PyTorch container sets for every job, the master being here.
            "MASTER_ADDR": MASTER_ADDR,
            "MASTER_PORT": str(master_port),
            "NCCL_SOCKET_IFNAME": str(resource["network_interface_name"]),
            "NCCL_IB_DISABLE": "1",
            "NCCL_DEBUG": "WARN",
            "SSM_STATE_DIR": str(state),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    if toolkit_env["additional_framework_parameters"].get("sagemaker_torch_distributed_enabled"):
        env["NCCL_PROTO"] = "simple"  # as the toolkit's torchrun launcher sets it
    return env


def user_args(inst: Instance) -> list[str]:
    """The entry point's arguments, as the toolkit builds them from hyperparameters.json."""
    user, _ = split_hyperparameters(read_config(inst)[0])
    return cmd_args(user)
