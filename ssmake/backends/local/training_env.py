"""What AWS's `sagemaker-training` toolkit makes of an instance's config files.

Inside a SageMaker framework container the toolkit reads `input/config`
(hyperparameters.json, resourceconfig.json, inputdataconfig.json) and gives the
entry point its `SM_*` variables and its command line. This module does the same
from the same files, so that a worker sees here what it would see there; the
toolkit itself is the oracle of its tests (tests/test_toolkit_oracle.py).
Where a value must differ on one machine, docs/api.md says which and why.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

# The hyperparameters the toolkit keeps for itself (params.SAGEMAKER_HYPERPARAMETERS);
# any other `sagemaker_*` one is a framework parameter.
SAGEMAKER_HYPERPARAMETERS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "default_user_module_name",
    "_tuning_objective_metric",
    "sagemaker_s3_output",
)
# Any of these framework parameters puts the current instance group in the distribution.
_DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)
DEFAULT_GROUP = "homogeneousCluster"
LOG_LEVEL_INFO = 20


def decode_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """hyperparameters.json's values, JSON-decoded where they are JSON."""
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def split_hyperparameters(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the user's hyperparameters, SageMaker's own), decoded."""
    decoded = decode_hyperparameters(raw)
    ours = {k: v for k, v in decoded.items() if k in SAGEMAKER_HYPERPARAMETERS or _framework(k)}
    return {k: v for k, v in decoded.items() if k not in ours}, ours


def _framework(key: str) -> bool:
    return key.startswith("sagemaker_")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The entry point's arguments: sorted by name, `-k` for a one-letter name, values
    as Python prints them (True, [1, 2]), a table as k=v,k=v, None as ''."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        name = _text(key)
        value = hyperparameters[key]
        if isinstance(value, Mapping):
            text = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        else:
            text = _text(value)
        args += [f"--{name}" if len(name) > 1 else f"-{name}" if name else "", text]
    return args


def env_value(value: Any) -> str:
    """A value as an `SM_*` variable: strings as they are, None empty, others compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class Machine:
    """What the toolkit asks the machine: its CPUs, GPUs, Neuron cores and tools."""

    num_cpus: int
    num_gpus: int
    num_neurons: int = 0
    smddprun: bool = False
    smddpmprun: bool = False


def count_neuron_cores(instance_type: str) -> int:
    """The toolkit's count: 64 on trn2.48xlarge, else what `neuron-ls -j` lists."""
    if "trn2.48xlarge" in instance_type:
        return 64
    if shutil.which("neuron-ls") is None:
        return 0
    try:
        out = subprocess.run(
            shlex.split("neuron-ls -j"), capture_output=True, check=True, timeout=30
        ).stdout
        return sum(int(item.get("nc_count", 0)) for item in json.loads(out))
    except (OSError, ValueError, TypeError, AttributeError, subprocess.SubprocessError):
        return 0


def this_machine(instance_type: str, num_gpus: int) -> Machine:
    return Machine(
        num_cpus=os.cpu_count() or 1,
        num_gpus=num_gpus,
        num_neurons=count_neuron_cores(instance_type),
        smddprun=shutil.which("smddprun") is not None,
        smddpmprun=shutil.which("smddpmprun") is not None,
    )


def training_env(
    base: PurePath,
    resource_config: Mapping[str, Any],
    input_data_config: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    environ: Mapping[str, str],
    machine: Machine,
) -> dict[str, Any]:
    """The toolkit's Environment as a dict (SM_TRAINING_ENV): `base` stands for /opt/ml,
    `environ` is the container's environment (the job's Environment and ours)."""
    user, sagemaker = split_hyperparameters(hyperparameters)
    framework = {k: v for k, v in sagemaker.items() if k not in SAGEMAKER_HYPERPARAMETERS}
    hosts = list(resource_config["hosts"])
    current_host = str(resource_config["current_host"])
    group = str(resource_config.get("current_group_name", DEFAULT_GROUP))
    groups = list(resource_config.get("instance_groups", []))
    groups_by_name = {g["instance_group_name"]: g for g in groups}
    if "sagemaker_distribution_instance_groups" in framework:
        distribution_groups = framework["sagemaker_distribution_instance_groups"]
    else:
        distributed = any(framework.get(flag, False) for flag in _DISTRIBUTION_FLAGS)
        distribution_groups = [group] if distributed else []
    if groups:
        distribution_hosts = [
            h for g in groups if g["instance_group_name"] in distribution_groups for h in g["hosts"]
        ]
    else:
        distribution_hosts = list(hosts)
    master = distribution_hosts[0] if distribution_hosts else hosts[0]
    program = environ.get("SAGEMAKER_PROGRAM")
    module = program if program is not None else str(sagemaker.get("sagemaker_program"))
    mp_parameters = environ.get("SM_HP_MP_PARAMETERS")
    input_dir = base / "input"
    output_dir = base / "output"
    return {
        "additional_framework_parameters": framework,
        "channel_input_dirs": {c: str(input_dir / "data" / c) for c in input_data_config},
        "current_host": current_host,
        "current_instance_group": group,
        "current_instance_group_hosts": next(
            (g["hosts"] for g in groups if g["instance_group_name"] == group), []
        ),
        "current_instance_type": resource_config.get("current_instance_type", "local"),
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distribution_groups,
        "framework_module": environ.get("SAGEMAKER_TRAINING_MODULE"),
        "hosts": hosts,
        "hyperparameters": user,
        "input_config_dir": str(input_dir / "config"),
        "input_data_config": dict(input_data_config),
        "input_dir": str(input_dir),
        "instance_groups": [g["instance_group_name"] for g in groups],
        "instance_groups_dict": groups_by_name,
        "is_hetero": len(groups) > 1,
        "is_master": current_host == master,
        # The toolkit's own expression, None when the variable is unset.
        "is_modelparallel_enabled": mp_parameters and mp_parameters != "{}",
        "is_smddpmprun_installed": machine.smddpmprun,
        "is_smddprun_installed": machine.smddprun,
        "job_name": environ.get("TRAINING_JOB_NAME"),
        "log_level": sagemaker.get("sagemaker_container_log_level", LOG_LEVEL_INFO),
        "master_hostname": master,
        "model_dir": str(base / "model"),
        "module_dir": str(sagemaker.get("sagemaker_submit_directory", base / "code")),
        "module_name": module[:-3] if module.endswith(".py") else module,
        "network_interface_name": resource_config.get("network_interface_name", "eth0"),
        "num_cpus": machine.num_cpus,
        "num_gpus": machine.num_gpus,
        "num_neurons": machine.num_neurons,
        "output_data_dir": str(output_dir / "data"),
        "output_dir": str(output_dir),
        "output_intermediate_dir": str(output_dir / "intermediate"),
        "resource_config": dict(resource_config),
        "topology": resource_config.get("topology", []),
        "user_entry_point": program if program else sagemaker.get("sagemaker_program"),
    }


def sm_variables(env: Mapping[str, Any]) -> dict[str, str]:
    """The `SM_*` variables the toolkit derives from its Environment (`to_env_vars`)."""
    fields: dict[str, Any] = {
        "hosts": env["hosts"],
        "network_interface_name": env["network_interface_name"],
        "hps": env["hyperparameters"],
        "user_entry_point": env["user_entry_point"],
        "framework_params": env["additional_framework_parameters"],
        "resource_config": env["resource_config"],
        "input_data_config": env["input_data_config"],
        "channels": sorted(env["channel_input_dirs"]),
        "training_env": env,
        "user_args": cmd_args(env["hyperparameters"]),
    }
    for key in (
        "output_data_dir",
        "current_host",
        "current_instance_type",
        "current_instance_group",
        "current_instance_group_hosts",
        "instance_groups",
        "instance_groups_dict",
        "distribution_instance_groups",
        "is_hetero",
        "module_name",
        "log_level",
        "framework_module",
        "input_dir",
        "input_config_dir",
        "output_dir",
        "num_cpus",
        "num_gpus",
        "num_neurons",
        "model_dir",
        "module_dir",
        "output_intermediate_dir",
    ):
        fields[key] = env[key]
    if env["topology"]:
        fields["topology"] = env["topology"]
    for name, path in env["channel_input_dirs"].items():
        fields[f"channel_{name}"] = path
    for key, value in env["hyperparameters"].items():
        fields[f"hp_{key}"] = value
    return {f"SM_{key.upper()}": env_value(value) for key, value in fields.items()}


def toolkit_variables(
    resource_config: Mapping[str, Any], hyperparameters: Mapping[str, Any]
) -> dict[str, str]:
    """What the toolkit also sets in the environment the entry point inherits: the job
    name, the host and the region (empty when hyperparameters.json has none)."""
    _, sagemaker = split_hyperparameters(hyperparameters)
    return {
        "SAGEMAKER_JOB_NAME": _text(sagemaker.get("sagemaker_job_name", "")),
        "CURRENT_HOST": str(resource_config["current_host"]),
        "SAGEMAKER_REGION": _text(sagemaker.get("sagemaker_region", "")),
    }
