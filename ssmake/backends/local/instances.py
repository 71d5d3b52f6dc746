"""Setting up a local job's instances as SageMaker's containers find themselves.

Each instance (`algo-1` … `algo-N`) has its own base directory standing in for
`/opt/ml`: the job's code extracted as `code/`, its channels downloaded from the
store (sharded when asked) under `input/data/`, the `input/config` files, and
the state restored from the checkpoint prefix. `environment` gives it the `SM_*`
variables pointing there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from ssmake.backends import LOG_TAIL_LINES
from ssmake.plan.hashcache import sha256_path
from ssmake.plan.jobspec import JobSpec, sagemaker_param, user_hyperparameters
from ssmake.stores import ObjectInfo, Store, local_path, store_for_uri
from ssmake.stores.extract import extract

if TYPE_CHECKING:
    from ssmake.backends.local.containers import ContainerProcess

# What a later ssmake needs to clean up after a job if its process dies: where
# its state and logs go (never its Environment: it may hold secrets).
JOB_FILE = "job.json"
_RECOVERY_KEYS = (
    "TrainingJobName",
    "OutputDataConfig",
    "CheckpointConfig",
    "ResourceConfig",
    "StoppingCondition",
)
# The sha256 of each state file as restored, by its name below the state directory.
RESTORED_FILE = "restored-state.json"


@dataclass
class Instance:
    """One instance of a job: its host name and base directory, then its process."""

    host: str
    base: Path
    process: subprocess.Popen[bytes] | ContainerProcess | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    reader: threading.Thread | None = None


def prepare_instances(spec: JobSpec, run_dir: Path) -> tuple[list[Instance], dict[str, str]]:
    """Make `run_dir` afresh, with a base directory for each instance holding its code,
    channels and state. Returns the instances and the sha256 of each restored state file."""
    count = int(spec["ResourceConfig"]["InstanceCount"])
    hosts = [f"algo-{i}" for i in range(1, count + 1)]
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    _write_json(run_dir / JOB_FILE, {k: spec[k] for k in _RECOVERY_KEYS if k in spec})
    code_tar = run_dir / "sourcedir.tar.gz"
    store, key = store_for_uri(sagemaker_param(spec, "sagemaker_submit_directory"))
    store.get_file(key, code_tar)
    instances = [Instance(h, run_dir / h) for h in hosts]
    for inst in instances:
        for sub in ("model", "output/data", "input/config", "state"):
            (inst.base / sub).mkdir(parents=True, exist_ok=True)
        extract(code_tar, inst.base / "code")
    _download_channels(spec, run_dir, instances)
    return instances, _restore_state(spec, run_dir, instances)


def _listing(store: Store, prefix: str) -> list[ObjectInfo]:
    objs = [o for o in store.list(prefix) if not o.key.endswith("/")]
    return sorted(objs, key=lambda o: o.key)


def _relative(key: str, prefix: str) -> str:
    # As SageMaker does: the key below the prefix's last "/".
    return key[prefix.rfind("/") + 1 :]


def _download_channels(spec: JobSpec, run_dir: Path, instances: list[Instance]) -> None:
    n = len(instances)
    for channel in spec.get("InputDataConfig", []):
        name = channel["ChannelName"]
        source = channel["DataSource"]["S3DataSource"]
        store, prefix = store_for_uri(source["S3Uri"])
        objects = _listing(store, prefix)
        sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
        cache = run_dir / "channels" / name
        for i, obj in enumerate(objects):
            rel = _relative(obj.key, prefix)
            if not rel:
                continue
            targets = [instances[i % n]] if sharded else instances
            local = local_path(cache, rel, store.uri(obj.key))
            store.get_file(obj.key, local)
            for inst in targets:
                dest = inst.base / "input" / "data" / name / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(local, dest)
                except OSError:
                    shutil.copyfile(local, dest)
        for inst in instances:
            (inst.base / "input" / "data" / name).mkdir(parents=True, exist_ok=True)


def _restore_state(spec: JobSpec, run_dir: Path, instances: list[Instance]) -> dict[str, str]:
    restored: dict[str, str] = {}
    checkpoint = spec.get("CheckpointConfig")
    if not checkpoint:
        return restored
    store, prefix = store_for_uri(checkpoint["S3Uri"])
    if not prefix.endswith("/"):
        prefix += "/"
    for obj in _listing(store, prefix):
        rel = obj.key[len(prefix) :]
        first = local_path(instances[0].base / "state", rel, store.uri(obj.key))
        store.get_file(obj.key, first)
        restored[rel] = sha256_path(first)
        for inst in instances[1:]:
            dest = inst.base / "state" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first, dest)
    _write_json(run_dir / RESTORED_FILE, restored)
    return restored


def user_args(spec: JobSpec) -> list[str]:
    """The hyperparameters as the entry point's command-line arguments."""
    args: list[str] = []
    for key, value in user_hyperparameters(spec).items():
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return args


def environment(
    spec: JobSpec,
    inst: Instance,
    hosts: list[str],
    *,
    base: PurePath | None = None,
    state: PurePath | None = None,
    inherit: bool = True,
) -> dict[str, str]:
    """The instance's variables; `base`/`state` are where its directories appear to
    the job (inside a container: /opt/ml and /state), `inherit` adds ours."""
    job_name = str(spec["TrainingJobName"])
    hps = user_hyperparameters(spec)
    channels = [c["ChannelName"] for c in spec.get("InputDataConfig", [])]
    base = inst.base if base is None else base
    state = base / "state" if state is None else state
    channel_dirs = {c: str(base / "input" / "data" / c) for c in channels}
    training_env = {
        "job_name": job_name,
        "hosts": hosts,
        "current_host": inst.host,
        "hyperparameters": hps,
        "channel_input_dirs": channel_dirs,
        "model_dir": str(base / "model"),
        "output_data_dir": str(base / "output" / "data"),
        "output_dir": str(base / "output"),
        "input_dir": str(base / "input"),
        "input_config_dir": str(base / "input" / "config"),
        "module_dir": str(base / "code"),
        "user_entry_point": sagemaker_param(spec, "sagemaker_program"),
        "num_cpus": os.cpu_count() or 1,
        "num_gpus": 0,
    }
    env = dict(os.environ) if inherit else {}
    env.update(spec.get("Environment", {}))
    env.update(
        {
            "SM_HOSTS": json.dumps(hosts),
            "SM_CURRENT_HOST": inst.host,
            "SM_HPS": json.dumps(hps),
            "SM_CHANNELS": json.dumps(channels),
            "SM_MODEL_DIR": str(base / "model"),
            "SM_OUTPUT_DATA_DIR": str(base / "output" / "data"),
            "SM_OUTPUT_DIR": str(base / "output"),
            "SM_INPUT_DIR": str(base / "input"),
            "SM_INPUT_CONFIG_DIR": str(base / "input" / "config"),
            "SM_MODULE_DIR": str(base / "code"),
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "SM_NUM_GPUS": "0",
            "SM_USER_ARGS": json.dumps(user_args(spec)),
            "SM_TRAINING_ENV": json.dumps(training_env),
            "SSM_STATE_DIR": str(state),
            "TRAINING_JOB_NAME": job_name,
            "PYTHONUNBUFFERED": "1",
        }
    )
    for key, value in hps.items():
        env[f"SM_HP_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    for name, path in channel_dirs.items():
        env[f"SM_CHANNEL_{name.upper()}"] = path
    return env


def write_config(spec: JobSpec, inst: Instance, hosts: list[str]) -> None:
    """The instance's `input/config` files: hyperparameters, resources, channels."""
    config = inst.base / "input" / "config"
    hps = {k: v for k, v in spec.get("HyperParameters", {}).items()}
    (config / "hyperparameters.json").write_text(json.dumps(hps, indent=2))
    resource = {"current_host": inst.host, "hosts": hosts, "network_interface_name": "lo"}
    (config / "resourceconfig.json").write_text(json.dumps(resource, indent=2))
    data_config = {
        c["ChannelName"]: {
            "TrainingInputMode": "File",
            "S3DistributionType": c["DataSource"]["S3DataSource"]["S3DataDistributionType"],
            "RecordWrapperType": "None",
        }
        for c in spec.get("InputDataConfig", [])
    }
    (config / "inputdataconfig.json").write_text(json.dumps(data_config, indent=2))


def _write_json(path: Path, doc: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)
