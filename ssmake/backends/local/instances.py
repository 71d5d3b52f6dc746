"""Setting up a local job's instances as SageMaker's containers find themselves.

Each instance (`algo-1` … `algo-N`) has its own base directory standing in for
`/opt/ml`: the job's code extracted as `code/`, its channels downloaded from the
store (sharded when asked) under `input/data/`, and the state restored from
the checkpoint prefix. `instance_config` writes its `input/config` files and
gives it the variables pointing there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ssmake.backends import LOG_TAIL_LINES, ProgressFn
from ssmake.plan.hashcache import sha256_path
from ssmake.plan.jobspec import JobSpec, sagemaker_param
from ssmake.progress import Throttled
from ssmake.stores import ObjectInfo, Store, local_path, store_for_uri
from ssmake.stores.extract import extract
from ssmake.stores.local import LocalStore

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
# Channels this large report their staging ("staging inputs", bytes copied from the
# store into the instances), at most once per PROGRESS_INTERVAL seconds and at the end.
PROGRESS_MIN_BYTES = 1 << 20
PROGRESS_INTERVAL = 0.1


@dataclass
class Instance:
    """One instance of a job: its host name and base directory, then its process."""

    host: str
    base: Path
    process: subprocess.Popen[bytes] | ContainerProcess | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    reader: threading.Thread | None = None


def prepare_instances(
    spec: JobSpec, run_dir: Path, on_progress: ProgressFn | None = None
) -> tuple[list[Instance], dict[str, str]]:
    """Make `run_dir` afresh, with a base directory for each instance holding its code,
    channels and state, telling `on_progress` how far the channels' staging is. Returns
    the instances and the sha256 of each restored state file."""
    count = int(spec["ResourceConfig"]["InstanceCount"])
    hosts = [f"algo-{i}" for i in range(1, count + 1)]
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    _write_json(run_dir / JOB_FILE, {k: spec[k] for k in _RECOVERY_KEYS if k in spec})
    store, key = store_for_uri(sagemaker_param(spec, "sagemaker_submit_directory"))
    if isinstance(store, LocalStore) and store.exists(key):
        # Read in place: a code tarball's key names its content, so it is never
        # replaced by other bytes between extract's check and its extraction.
        code_tar = store.file(key)
    else:
        code_tar = run_dir / "sourcedir.tar.gz"
        store.get_file(key, code_tar)
    instances = [Instance(h, run_dir / h) for h in hosts]
    for inst in instances:
        for sub in ("model", "output/data", "input/config", "state"):
            (inst.base / sub).mkdir(parents=True, exist_ok=True)
        extract(code_tar, inst.base / "code")
    _download_channels(spec, run_dir, instances, on_progress)
    return instances, _restore_state(spec, run_dir, instances)


def _listing(store: Store, prefix: str) -> list[ObjectInfo]:
    objs = [o for o in store.list(prefix) if not o.key.endswith("/")]
    return sorted(objs, key=lambda o: o.key)


def _relative(key: str, prefix: str) -> str:
    # As SageMaker does: the key below the prefix's last "/".
    return key[prefix.rfind("/") + 1 :]


def _download_channels(
    spec: JobSpec, run_dir: Path, instances: list[Instance], on_progress: ProgressFn | None
) -> None:
    n = len(instances)
    channels = []
    for channel in spec.get("InputDataConfig", []):
        store, prefix = store_for_uri(channel["DataSource"]["S3DataSource"]["S3Uri"])
        channels.append((channel, store, prefix, _listing(store, prefix)))
    total = sum(o.size for *_, objects in channels for o in objects)
    progress = Throttled(
        total,
        None
        if on_progress is None
        else lambda done, whole: on_progress("staging inputs", done, whole),
        min_bytes=PROGRESS_MIN_BYTES,
        interval=PROGRESS_INTERVAL,
    )
    for channel, store, prefix, objects in channels:
        name = channel["ChannelName"]
        source = channel["DataSource"]["S3DataSource"]
        sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
        for i, obj in enumerate(objects):
            rel = _relative(obj.key, prefix)
            if not rel:
                continue
            targets = [instances[i % n]] if sharded else instances
            for inst in targets:
                # A copy of its own for each instance (copy-on-write where the file
                # system can), never a link: a job writing to its input changes
                # neither the store nor another instance's input.
                dest = local_path(inst.base / "input" / "data" / name, rel, store.uri(obj.key))
                store.get_file(obj.key, dest)
            progress.add(obj.size)
        for inst in instances:
            (inst.base / "input" / "data" / name).mkdir(parents=True, exist_ok=True)
    progress.finish()


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


def _write_json(path: Path, doc: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)
