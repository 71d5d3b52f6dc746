"""The GPUs of this machine, shared among a local job's instances.

On SageMaker each instance has GPUs of its own. Here the instances share the
machine's: those CUDA_VISIBLE_DEVICES names when it is set, else those
`nvidia-smi -L` lists. Each instance gets its own share through its
CUDA_VISIBLE_DEVICES, and SM_NUM_GPUS counts that share.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

_GPU_LINE = re.compile(r"GPU (\d+):")


def visible_gpus() -> list[str]:
    """The GPUs a process started from here may use, by their CUDA names."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        names = [name.strip() for name in given.split(",")]
        # CUDA stops at the first invalid name: "-1" (or "") hides every GPU.
        visible: list[str] = []
        for name in names:
            if not name or name.startswith("-"):
                break
            visible.append(name)
        return visible
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [m[1] for line in out.splitlines() if (m := _GPU_LINE.match(line))]


def gpu_shares(gpus: list[str], instances: int) -> list[list[str]]:
    """Each instance's GPUs: an equal share of its own when there are enough, else one
    GPU each, shared round-robin."""
    if not gpus:
        return [[] for _ in range(instances)]
    if len(gpus) < instances:
        return [[gpus[i % len(gpus)]] for i in range(instances)]
    each = len(gpus) // instances
    return [gpus[i * each : (i + 1) * each] for i in range(instances)]
