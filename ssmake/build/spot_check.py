"""Whether a spot job's code keeps its progress: an interrupted spot job without
checkpoints starts over, so the runner warns before launching one."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPOT_WITHOUT_STATE = (
    "warning: spot job without checkpointing: an interruption restarts it from scratch "
    "(save progress in args.state, e.g. from worker_lib.onTermination, or set spot = false)"
)
# What code that keeps its progress in the task's state says (worker_toolkit's
# names, the variable, or the checkpoint directory itself).
STATE_MENTIONS = (
    "args.state",
    "SSM_STATE_DIR",
    "initMultiWorkersState",
    "onTermination",
    "/state",
)
_MENTION_SCAN_BYTES = 4 << 20


def mentions_state(files: Iterable[Path]) -> bool:
    """Whether any of the code files names the task's state (its first 4 MiB)."""
    needles = [m.encode() for m in STATE_MENTIONS]
    for path in files:
        try:
            with path.open("rb") as f:
                text = f.read(_MENTION_SCAN_BYTES)
        except OSError:
            continue
        if any(n in text for n in needles):
            return True
    return False
