"""AWS's own `sagemaker-training` toolkit is the oracle of the local backend.

A probe worker runs under the local backend (2 instances, 2 channels, one of them
sharded, hyperparameters of every type). Each instance's config files are then fed
to the toolkit's `Environment` (SAGEMAKER_BASE_DIR pointing at a copy of them,
plus the job's Environment), in a process of its own since the toolkit reads its
base directory on import. Every SM_* variable, every SM_TRAINING_ENV key, the
arguments and the variables the toolkit sets for the entry point must equal what
the worker saw, apart from the documented differences in DIFFERS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ssmake.backends.local.training_env import cmd_args, env_value

if TYPE_CHECKING:
    from conftest import ProjectDir

# What must differ on one machine (docs/api.md, "What differs locally"): the
# instances share this machine's GPUs, each counting only its own share.
DIFFERS = {"SM_NUM_GPUS", "SM_TRAINING_ENV.num_gpus"}

PROBE = """
import json, os, sys
from pathlib import Path
from worker_toolkit import worker_lib

config = Path(os.environ["SM_INPUT_CONFIG_DIR"])
seen = {
    "env": dict(os.environ),
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "config": {p.name: json.loads(p.read_text()) for p in sorted(config.glob("*.json"))},
    "hps": worker_lib.parseArgs().hps,
    "data": {
        c: sorted(p.name for p in Path(d).iterdir())
        for c, d in json.loads(os.environ["SM_TRAINING_ENV"])["channel_input_dirs"].items()
    },
}
out = Path(os.environ["PROBE_OUT"]) / (os.environ["SM_CURRENT_HOST"] + ".json")
out.write_text(json.dumps(seen))
"""

ORACLE = """
import json, os
from sagemaker_training import environment
env = environment.Environment()
set_for_the_job = ("SAGEMAKER_JOB_NAME", "CURRENT_HOST", "SAGEMAKER_REGION")
print(json.dumps({
    "env": env.to_env_vars(),
    "args": env.to_cmd_args(),
    "environ": {k: os.environ[k] for k in set_for_the_job},
}))
"""

FAKE_NVIDIA_SMI = """#!/bin/sh
[ "$1" = "-L" ] || [ "$1" = "--list-gpus" ] || exit 2
for i in 0 1 2 3; do echo "GPU $i: Tesla T4 (UUID: GPU-0000000$i)"; done
"""

HYPERPARAMETERS = {
    "k": 5,
    "learning-rate": 0.01,
    "epochs": 3,
    "name": "resnet",
    "verbose": True,
    "quiet": False,
    "layers": [64, 32],
    "optim": {"name": "sgd", "momentum": 0.9},
    "empty": "",
}


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine with 4 GPUs, as `nvidia-smi` tells it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return bin_dir


def _run_probe(project: ProjectDir, tmp_path: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    out = tmp_path / "seen"
    out.mkdir()
    project.write("probe.py", PROBE)
    for name in ("a", "b", "c"):
        project.write(f"data/train/{name}.txt", name)
    project.write("data/test/t.txt", "t")
    project.ssmfile(
        f"""
        [project]
        name = "oracle"
        region = "eu-west-1"

        [tasks.probe]
        entry_point = "probe.py"
        instance_count = 2
        instance_type = "ml.g4dn.12xlarge"
        hyperparameters = {json.dumps(HYPERPARAMETERS).replace('": ', '" = ')}
        environment = {{ PROBE_OUT = "{out}", MY_SETTING = "on" }}
        inputs.train = {{ path = "data/train", distribution = "ShardedByS3Key" }}
        inputs.test = "data/test"
        """
    )
    result = project.run("probe")
    assert result.code == 0, result.out + result.err
    return out, {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def _oracle(seen: dict[str, Any], copy: Path, path: str) -> dict[str, Any]:
    """The toolkit's reading of the config files the worker saw, copied to `copy`."""
    config = copy / "input" / "config"
    config.mkdir(parents=True)
    for name, doc in seen["config"].items():
        (config / name).write_text(json.dumps(doc))
    job_environment = {k: seen["env"][k] for k in ("PROBE_OUT", "MY_SETTING", "SSM_STATE_DIR")}
    env = {
        "PATH": path,
        "SAGEMAKER_BASE_DIR": str(copy),
        "TRAINING_JOB_NAME": seen["env"]["TRAINING_JOB_NAME"],
        "AWS_CONFIG_FILE": "/nonexistent",
        **job_environment,
    }
    proc = subprocess.run(
        [sys.executable, "-c", ORACLE], env=env, capture_output=True, text=True, check=True
    )
    base = str(Path(seen["cwd"]).parent)
    # The toolkit read a copy of the instance's directory: its paths are the instance's.
    doc: dict[str, Any] = json.loads(proc.stdout.replace(str(copy), base))
    return doc


def test_the_worker_sees_what_the_toolkit_gives(
    project: ProjectDir, tmp_path: Path, fake_gpus: Path
) -> None:
    _, seen_by_host = _run_probe(project, tmp_path)
    assert sorted(seen_by_host) == ["algo-1", "algo-2"]
    matched = compared = 0
    for host, seen in seen_by_host.items():
        oracle = _oracle(seen, tmp_path / f"copy-{host}", os.environ["PATH"])
        worker_sm = {k: v for k, v in seen["env"].items() if k.startswith("SM_")}
        assert sorted(worker_sm) == sorted(oracle["env"]), host
        for key, expected in oracle["env"].items():
            if key == "SM_TRAINING_ENV":
                ours, theirs = json.loads(worker_sm[key]), json.loads(expected)
                assert sorted(ours) == sorted(theirs)
                for field, value in theirs.items():
                    compared += 1
                    if f"{key}.{field}" not in DIFFERS:
                        assert ours[field] == value, f"{host} {key}.{field}"
                        matched += 1
                continue
            compared += 1
            if key not in DIFFERS:
                assert worker_sm[key] == expected, f"{host} {key}"
                matched += 1
        assert seen["argv"][1:] == oracle["args"], host
        compared, matched = compared + 1, matched + 1
        for key, expected in oracle["environ"].items():
            assert seen["env"][key] == expected, f"{host} {key}"
            compared, matched = compared + 1, matched + 1
        # worker_lib reads the same hyperparameters as the toolkit hands the job.
        assert seen["hps"] == json.loads(oracle["env"]["SM_HPS"]) == HYPERPARAMETERS
    print(f"local backend vs sagemaker-training: {matched} of {compared} items equal")

    one, two = seen_by_host["algo-1"], seen_by_host["algo-2"]
    # The documented difference: each instance counts the GPUs of its own share.
    assert (one["env"]["CUDA_VISIBLE_DEVICES"], two["env"]["CUDA_VISIBLE_DEVICES"]) == (
        "0,1",
        "2,3",
    )
    assert one["env"]["SM_NUM_GPUS"] == "2"
    # The arguments as SageMaker passes them: sorted, -k, True/False, lists and tables.
    assert one["argv"][1:] == [
        "--empty",
        "",
        "--epochs",
        "3",
        "-k",
        "5",
        "--layers",
        "[64, 32]",
        "--learning-rate",
        "0.01",
        "--name",
        "resnet",
        "--optim",
        "momentum=0.9,name=sgd",
        "--quiet",
        "False",
        "--verbose",
        "True",
    ]
    # Both instances meet at the same master, which is this machine.
    assert one["env"]["MASTER_ADDR"] == two["env"]["MASTER_ADDR"] == "127.0.0.1"
    assert one["env"]["MASTER_PORT"] == two["env"]["MASTER_PORT"]
    # The sharded channel is split between the instances, the other one is whole.
    assert sorted(one["data"]["train"] + two["data"]["train"]) == ["a.txt", "b.txt", "c.txt"]
    assert one["data"]["test"] == two["data"]["test"] == ["t.txt"]


def test_the_config_files_are_those_sagemaker_writes(
    project: ProjectDir, tmp_path: Path, fake_gpus: Path
) -> None:
    _, seen_by_host = _run_probe(project, tmp_path)
    config = seen_by_host["algo-2"]["config"]
    hps = config["hyperparameters.json"]
    # Every value a JSON string, as the SageMaker SDK encodes them.
    for name, value in HYPERPARAMETERS.items():
        assert hps[name] == json.dumps(value)
    assert json.loads(hps["sagemaker_region"]) == "eu-west-1"
    assert json.loads(hps["sagemaker_program"]) == "probe.py"
    assert json.loads(hps["sagemaker_container_log_level"]) == 20
    assert config["resourceconfig.json"] == {
        "current_host": "algo-2",
        "current_instance_type": "ml.g4dn.12xlarge",
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1", "algo-2"],
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": "ml.g4dn.12xlarge",
                "hosts": ["algo-1", "algo-2"],
            }
        ],
        "network_interface_name": "lo",
    }
    assert config["inputdataconfig.json"]["train"]["S3DistributionType"] == "ShardedByS3Key"
    assert config["checkpointconfig.json"]["LocalPath"] == "/state"
    assert config["trainingjobconfig.json"]["HyperParameters"] == hps


@pytest.mark.parametrize(
    "hyperparameters",
    [
        {"a": None, "bb": [1, "x", None], "c": {"z": None, "a": [1]}, "d": 1.5e-7},
        {"flag": True, "off": False, "n": 0, "s": "with space", "-": "dash"},
    ],
)
def test_arguments_and_values_render_as_the_toolkit_renders_them(
    hyperparameters: dict[str, Any],
) -> None:
    from sagemaker_training import mapping

    assert cmd_args(hyperparameters) == mapping.to_cmd_args(hyperparameters)
    ours = {f"SM_{k.upper()}": env_value(v) for k, v in hyperparameters.items()}
    assert ours == mapping.to_env_vars(hyperparameters)


@pytest.mark.parametrize(
    ("visible", "shares"),
    [("5,7,9", ("5", "7")), ("3", ("3", "3")), ("-1", (None, None))],
)
def test_cuda_visible_devices_is_shared_between_the_instances(
    project: ProjectDir,
    tmp_path: Path,
    fake_gpus: Path,
    monkeypatch: pytest.MonkeyPatch,
    visible: str,
    shares: tuple[str | None, str | None],
) -> None:
    # CUDA_VISIBLE_DEVICES, when set, names the GPUs there are (nvidia-smi lists 4).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    _, seen_by_host = _run_probe(project, tmp_path)

    for host, share in zip(("algo-1", "algo-2"), shares, strict=True):
        env = seen_by_host[host]["env"]
        if share is None:
            assert env["SM_NUM_GPUS"] == "0" and env["CUDA_VISIBLE_DEVICES"] == "-1"
        else:
            assert env["CUDA_VISIBLE_DEVICES"] == share and env["SM_NUM_GPUS"] == "1"
