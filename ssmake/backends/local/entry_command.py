"""The command that starts a local instance's entry point, as the toolkit builds it.

AWS's `sagemaker-training` toolkit runs a `.py` script as `python -- SCRIPT ARGS`;
a source directory with a setup.py is a package, installed first and run as
`python -m MODULE ARGS`; anything else is a command, run as
`/bin/sh -c "./ENTRY ARGS"`. With `torch_distributed` the script runs under
torchrun, as the PyTorch container launches it. The arguments are the
hyperparameters as the toolkit renders them (`training_env.cmd_args`).
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ssmake.errors import BackendError

EntryKind = Literal["program", "package", "command"]


def entry_kind(code_dir: Path, entry: str) -> EntryKind:
    """The toolkit's reading of an entry point (`_entry_point_type.get`)."""
    if entry.endswith(".sh"):
        return "command"
    if (code_dir / "setup.py").exists():
        return "package"
    if entry.endswith(".py"):
        return "program"
    return "command"


@dataclass(frozen=True)
class Torchrun:
    """Where an instance stands in a torch_distributed job."""

    nodes: int
    node_rank: int
    procs_per_node: int
    master_addr: str
    master_port: int


def processes_per_host(framework: Mapping[str, Any], num_gpus: int) -> int:
    """The toolkit's default: the MPI setting, else one process per GPU, else one."""
    given = framework.get("sagemaker_mpi_num_of_processes_per_host")
    return int(given) if given else num_gpus if num_gpus > 0 else 1


def entry_command(
    python: str, code_dir: Path, entry: str, args: list[str], torchrun: Torchrun | None = None
) -> list[str]:
    """The command line that runs `entry` with `args`, from `code_dir`."""
    kind = entry_kind(code_dir, entry)
    if torchrun is not None:
        if kind != "program":
            raise BackendError(
                f"entry point {entry!r}: torch_distributed runs a Python script (.py) "
                "under torchrun, and a source_dir with a setup.py is a package: "
                "use a .py entry point without a setup.py, or drop distribution"
            )
        return [*_torchrun(python, entry), *_torchrun_options(torchrun), entry, *args]
    if kind == "program":
        return [python, "--", entry, *args]
    if kind == "package":
        module = entry[:-3] if entry.endswith(".py") else entry
        return [python, "-m", module, *args]
    (code_dir / entry).chmod(0o777)  # as the toolkit does, so that ./entry runs
    quoted = " ".join(shlex.quote(a) for a in args)
    return ["/bin/sh", "-c", f"./{shlex.quote(entry)} {quoted}"]


def _torchrun(python: str, entry: str) -> list[str]:
    beside = Path(python).parent / "torchrun"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("torchrun")
    if found is None:
        raise BackendError(
            f"entry point {entry!r}: distribution torch_distributed launches it with "
            f"torchrun, which is neither beside {python} nor on PATH: install torch "
            "(add it to the task's requirements.txt), or drop distribution"
        )
    return [found]


def _torchrun_options(t: Torchrun) -> list[str]:
    options = ["--nnodes", str(t.nodes), "--nproc_per_node", str(t.procs_per_node)]
    if t.nodes > 1:
        options += [
            "--master_addr",
            t.master_addr,
            "--master_port",
            str(t.master_port),
            "--node_rank",
            str(t.node_rank),
        ]
    return options


def package_install(python: str, target: Path) -> list[str]:
    """How the toolkit installs a source directory with a setup.py (`pip install .`, from
    it), here into `target` rather than the interpreter ssmake shares with other jobs;
    without build isolation, which would fetch setuptools from the network."""
    return [
        python,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "-q",
        "--no-build-isolation",
        "--target",
        str(target),
        ".",
    ]
