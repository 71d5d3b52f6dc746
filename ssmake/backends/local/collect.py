"""What a local job leaves in the store when it ends, where SageMaker puts it.

The logs of every instance, the state any instance changed (whatever the
outcome: it is what a rerun resumes from), and on success `model.tar.gz`, the
merged model directories, and `output.tar.gz`, the first instance's output data.
"""

from __future__ import annotations

import os
from pathlib import Path

from ssmake.backends import JobResult
from ssmake.backends.local.instances import Instance
from ssmake.plan.hashcache import sha256_path
from ssmake.plan.jobspec import JobSpec
from ssmake.stores import Store, store_for_uri
from ssmake.stores.archive import pack_dirs
from ssmake.stores.local import LocalStore

#: Set (to anything) to keep each job's run directory under .ssmake/cache/runs/, with
#: its files as the job left them (the store then gets copies).
KEEP_RUN_DIRS = "SSMAKE_KEEP_RUN_DIRS"


def _hand_over(store: Store, key: str, path: Path) -> None:
    """Store a file of the run directory: moved into a local store (the run directory
    is removed next, so a model's bytes are not copied), uploaded to any other."""
    if isinstance(store, LocalStore) and not os.environ.get(KEEP_RUN_DIRS):
        store.move_file(key, path)
    else:
        store.put_file(key, path)


def upload_results(
    spec: JobSpec,
    run_dir: Path,
    instances: list[Instance],
    result: JobResult,
    restored_state: dict[str, str],
) -> None:
    """Upload the logs, the state files whose sha256 differs from `restored_state`, and
    for a completed job its model and output."""
    output_uri = spec["OutputDataConfig"]["S3OutputPath"].rstrip("/") + "/"
    store, prefix = store_for_uri(output_uri)
    job_prefix = f"{prefix}{spec['TrainingJobName']}/"
    for log in sorted((run_dir / "logs").glob("*.log")):
        _hand_over(store, f"{job_prefix}logs/{log.name}", log)
    checkpoint = spec.get("CheckpointConfig")
    if checkpoint:
        state_store, state_prefix = store_for_uri(checkpoint["S3Uri"])
        if not state_prefix.endswith("/"):
            state_prefix += "/"
        # Every instance starts with a copy of the whole state; upload what any
        # instance changed or added (the last writer wins, as with S3 sync).
        changed: dict[str, Path] = {}
        for inst in instances:
            state_dir = inst.base / "state"
            for path in sorted(state_dir.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    rel = path.relative_to(state_dir).as_posix()
                    if restored_state.get(rel) != sha256_path(path):
                        changed[rel] = path
        for rel, path in changed.items():
            state_store.put_file(state_prefix + rel, path)
    if result.status != "Completed":
        return
    model = run_dir / "model.tar.gz"
    pack_dirs(model, [i.base / "model" for i in instances])
    _hand_over(store, f"{job_prefix}output/model.tar.gz", model)
    output = run_dir / "output.tar.gz"
    pack_dirs(output, [instances[0].base / "output" / "data"])
    _hand_over(store, f"{job_prefix}output/output.tar.gz", output)
