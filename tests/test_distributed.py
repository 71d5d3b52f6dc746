"""`distribution`: what the SageMaker SDK sends for it, and how local instances meet.

Locally every instance finds the master at MASTER_ADDR=127.0.0.1:MASTER_PORT;
with torch_distributed the entry point runs under torchrun as the toolkit
launches it. torchrun comes with torch, so the rendezvous is tested with a
stand-in torchrun (stdlib only, it starts the script as torchrun's static
rendezvous does) and a worker that connects the ranks over plain sockets; the
toolkit's own TorchDistributedRunner is the oracle of the command line. A real
gloo all-reduce runs when torch is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aws_fixtures import AwsEnv, SageMakerEmulator
    from conftest import ProjectDir

# A stand-in for torchrun: its options as the toolkit passes them, then, like torchrun's
# static rendezvous, nproc_per_node copies of the script with RANK, WORLD_SIZE, ...
FAKE_TORCHRUN = f"""#!{sys.executable}
import json, os, subprocess, sys
argv = sys.argv[1:]
opts = {{}}
while argv[0].startswith("--"):
    opts[argv[0][2:]] = argv[1]
    argv = argv[2:]
with open(os.environ["PROBE_OUT"] + "/torchrun-" + os.environ["SM_CURRENT_HOST"], "w") as f:
    f.write(json.dumps(sys.argv[1:]))
nodes, per_node = int(opts["nnodes"]), int(opts["nproc_per_node"])
node = int(opts.get("node_rank", 0))
procs = []
for local in range(per_node):
    env = dict(os.environ, LOCAL_RANK=str(local), RANK=str(node * per_node + local),
               WORLD_SIZE=str(nodes * per_node), LOCAL_WORLD_SIZE=str(per_node),
               GROUP_RANK=str(node),
               MASTER_ADDR=opts.get("master_addr", "127.0.0.1"),
               MASTER_PORT=opts.get("master_port", "29500"))
    procs.append(subprocess.Popen([sys.executable, *argv], env=env))
sys.exit(max(p.wait() for p in procs))
"""

# Rank 0 listens on MASTER_ADDR:MASTER_PORT; every other rank sends its rank and
# receives the sum of all of them: an all-reduce over sockets.
RENDEZVOUS = """
import os, socket, time
from pathlib import Path

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
if rank == 0:
    server = socket.create_server((addr, port))
    peers = [server.accept()[0] for _ in range(world - 1)]
    total = sum(int(p.recv(16)) for p in peers)
    for p in peers:
        p.sendall(str(total).encode())
else:
    for _ in range(200):
        try:
            conn = socket.create_connection((addr, port))
            break
        except OSError:
            time.sleep(0.05)
    conn.sendall(str(rank).encode())
    total = int(conn.recv(16))
Path(os.environ["SM_MODEL_DIR"], f"rank{rank}").write_text(f"{world} {total}")
"""

TORCH_ALLREDUCE = """
import os
from pathlib import Path
import torch
import torch.distributed as dist

dist.init_process_group("gloo", init_method="env://")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
Path(os.environ["SM_MODEL_DIR"], f"rank{dist.get_rank()}").write_text(str(int(value.item())))
dist.destroy_process_group()
"""

ORACLE_COMMAND = """
import json
from sagemaker_training import environment, runner
command = runner.get(runner.TorchDistributedRunnerType)._create_command()
print(json.dumps(command))
"""


@pytest.fixture
def fake_torchrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    torchrun = bin_dir / "torchrun"
    torchrun.write_text(FAKE_TORCHRUN)
    torchrun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def _ssmfile(out: Path, distribution: str, project: str = "", task: str = "") -> str:
    return f"""
    [project]
    name = "dist"
    {project}

    [tasks.train]
    {task}
    entry_point = "train.py"
    instance_count = 2
    hyperparameters = {{ epochs = 2 }}
    environment = {{ PROBE_OUT = "{out}" }}
    distribution = {distribution}
    download = ["model"]
    output_path = "out"
    """


def _model_files(project: ProjectDir) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((project.root / "out" / "model").iterdir())}


def test_torch_distributed_runs_under_torchrun_and_the_ranks_meet(
    project: ProjectDir, tmp_path: Path, fake_torchrun: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSMAKE_KEEP_RUN_DIRS", "1")  # its instances' files are compared below
    out = tmp_path / "seen"
    out.mkdir()
    project.write("train.py", RENDEZVOUS)
    project.ssmfile(_ssmfile(out, "{ torch_distributed = { enabled = true } }"))

    result = project.run()

    assert result.code == 0, result.err
    # Ranks 0 and 1, one per instance, summed to 1 through the master's socket.
    assert _model_files(project) == {"rank0": "2 1", "rank1": "2 1"}
    runs = sorted(project.store("cache", "runs").glob("train-*"))
    assert runs, "the job's run directory"
    for rank, host in enumerate(("algo-1", "algo-2")):
        ours: list[str] = json.loads((out / f"torchrun-{host}").read_text())
        theirs = _toolkit_command(runs[-1] / host, tmp_path / f"copy-{host}", fake_torchrun)
        port = ours[ours.index("--master_port") + 1]
        # The documented difference: the master is this machine, on a port of the job's.
        assert theirs[theirs.index("--master_addr") + 1] == "algo-1"
        assert theirs[theirs.index("--master_port") + 1] == "7777"
        expected = [a.replace("algo-1", "127.0.0.1").replace("7777", port) for a in theirs]
        assert ["torchrun", *ours] == expected
        assert ours[ours.index("--node_rank") + 1] == str(rank)


def _toolkit_command(instance: Path, copy: Path, bin_dir: Path) -> list[str]:
    """The command the toolkit's TorchDistributedRunner builds from `instance`'s files."""
    config = copy / "input" / "config"
    config.mkdir(parents=True)
    for f in (instance / "input" / "config").glob("*.json"):
        (config / f.name).write_text(f.read_text())
    (copy / "code").mkdir()
    (copy / "code" / "train.py").write_text("")
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SAGEMAKER_BASE_DIR": str(copy),
        "AWS_CONFIG_FILE": "/nonexistent",
    }
    proc = subprocess.run(
        [sys.executable, "-c", ORACLE_COMMAND], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    command: list[str] = json.loads(proc.stdout)
    return command


def test_without_torchrun_torch_distributed_says_what_to_install(
    project: ProjectDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here: torchrun is there")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    project.write("train.py", RENDEZVOUS)
    project.ssmfile(_ssmfile(tmp_path, "{ torch_distributed = { enabled = true } }"))

    result = project.run()

    assert result.code != 0
    assert "torchrun" in result.err and "install torch" in result.err


def test_every_instance_finds_the_master_without_a_launcher(
    project: ProjectDir, tmp_path: Path
) -> None:
    # No launcher: the ranks come from the host list, as a worker on SageMaker's
    # PyTorch container finds them (MASTER_ADDR and MASTER_PORT are set for every job).
    worker = RENDEZVOUS.replace(
        'rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])',
        "import json\n"
        'hosts = json.loads(os.environ["SM_HOSTS"])\n'
        'rank, world = hosts.index(os.environ["SM_CURRENT_HOST"]), len(hosts)',
    )
    project.write("train.py", worker)
    project.ssmfile(_ssmfile(tmp_path, "{ pytorchddp = { enabled = true } }"))

    result = project.run()

    assert result.code == 0, result.err
    assert _model_files(project) == {"rank0": "2 1", "rank1": "2 1"}


def test_gloo_all_reduce_across_local_instances(project: ProjectDir, tmp_path: Path) -> None:
    if importlib.util.find_spec("torch") is None:
        reason = "torch is not installed: the gloo all-reduce across instances needs it"
        print(f"test_gloo_all_reduce_across_local_instances: {reason}", file=sys.stderr)
        pytest.skip(reason)
    project.write("train.py", TORCH_ALLREDUCE)
    project.ssmfile(_ssmfile(tmp_path, "{ torch_distributed = { enabled = true } }"))

    result = project.run()

    assert result.code == 0, result.err
    assert _model_files(project) == {"rank0": "3", "rank1": "3"}


# What the SageMaker SDK's PyTorch estimator sends for each `distribution`
# (sagemaker/pytorch/estimator.py `_pytorch_distribution_configuration` and
# sagemaker/estimator.py `Framework._distribution_configuration`, v2.257),
# every value JSON-encoded by `_json_encode_hyperparameters`.
SDK_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "{ torch_distributed = { enabled = true } }": {
        "sagemaker_torch_distributed_enabled": "true",
        "sagemaker_instance_type": '"ml.m5.large"',
    },
    "{ pytorchddp = { enabled = true } }": {
        "sagemaker_pytorch_ddp_enabled": "true",
        "sagemaker_instance_type": '"ml.m5.large"',
    },
    "{ mpi = { enabled = true, processes_per_host = 2 } }": {
        "sagemaker_mpi_enabled": "true",
        "sagemaker_mpi_num_of_processes_per_host": "2",
        "sagemaker_mpi_custom_mpi_options": '""',
    },
    '{ mpi = { enabled = true, custom_mpi_options = "-x A" } }': {
        "sagemaker_mpi_enabled": "true",
        "sagemaker_mpi_custom_mpi_options": '"-x A"',
    },
}
_FLAGS = {
    "sagemaker_torch_distributed_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_mpi_enabled",
    "sagemaker_mpi_num_of_processes_per_host",
    "sagemaker_mpi_custom_mpi_options",
    "sagemaker_instance_type",
}


@pytest.mark.parametrize("distribution", sorted(SDK_HYPERPARAMETERS))
def test_the_request_carries_the_sdks_distribution_hyperparameters(
    project: ProjectDir,
    tmp_path: Path,
    aws: AwsEnv,
    sagemaker_emulator: SageMakerEmulator,
    fake_torchrun: Path,
    distribution: str,
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    project.write("train.py", "print('trained')\n")
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1"
    project.ssmfile(
        _ssmfile(
            tmp_path,
            distribution,
            project='backend = "sagemaker"\n    store = "s3://bucket"',
            task=f'image = {{ uri = "{image}" }}',
        )
    )

    result = project.run()

    assert result.code == 0, result.err
    [request] = sagemaker_emulator.requests
    hps = request["HyperParameters"]
    assert {k: v for k, v in hps.items() if k in _FLAGS} == SDK_HYPERPARAMETERS[distribution]
    # No [project] region: the SDK's, resolved from the AWS configuration.
    assert json.loads(hps["sagemaker_region"]) == os.environ["AWS_DEFAULT_REGION"]
