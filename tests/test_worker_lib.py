"""worker_toolkit.worker_lib, exercised the way jobs use it: real worker scripts run
as subprocesses in the environment a job runner prepares."""

import argparse
import ast
import json
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import ProjectDir

from worker_toolkit import worker_lib

REPO_ROOT = Path(__file__).resolve().parent.parent

PRINT_ARGS = """
import json, sys
from worker_toolkit import worker_lib
json.dump(vars(worker_lib.parseArgs()), sys.stdout)
"""


def job_env(
    base: Path,
    *,
    host: str = "algo-1",
    hosts: Sequence[str] = ("algo-1",),
    channels: Sequence[str] = (),
    hps: Mapping[str, Any] | None = None,
    job_name: str = "job-1",
) -> dict[str, str]:
    """The SM_* variables a runner sets for one instance, with its dirs under base."""
    hps = dict(hps or {})
    opt_ml = base / host
    input_dir = opt_ml / "input"
    env = {
        "SM_MODEL_DIR": str(opt_ml / "model"),
        "SM_OUTPUT_DIR": str(opt_ml / "output"),
        "SM_OUTPUT_DATA_DIR": str(opt_ml / "output" / "data"),
        "SM_INPUT_DIR": str(input_dir),
        "SM_INPUT_CONFIG_DIR": str(input_dir / "config"),
        "SM_CHANNELS": json.dumps(list(channels)),
        "SM_HOSTS": json.dumps(list(hosts)),
        "SM_CURRENT_HOST": host,
        "SM_HPS": json.dumps(hps),
        "SM_NUM_CPUS": "4",
        "SM_NUM_GPUS": "0",
        "SM_USER_ARGS": json.dumps([f"--{k}={v}" for k, v in hps.items()]),
        "SM_TRAINING_ENV": json.dumps({"job_name": job_name, "hosts": list(hosts)}),
        "SSM_STATE_DIR": str(base / "state"),
        "TRAINING_JOB_NAME": job_name,
    }
    for name in channels:
        channel_dir = input_dir / "data" / name
        channel_dir.mkdir(parents=True)
        env["SM_CHANNEL_" + name.upper()] = str(channel_dir)
    for name, value in hps.items():
        env["SM_HP_" + name.upper()] = json.dumps(value)
    for key in ("SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


def hp_argv(hps: Mapping[str, Any]) -> list[str]:
    """The command line a runner passes: one --key value pair per hyperparameter."""
    argv = []
    for name, value in hps.items():
        argv += ["--" + name, value if isinstance(value, str) else json.dumps(value)]
    return argv


def start_worker(
    tmp_path: Path,
    script: str,
    env: Mapping[str, str],
    argv: Sequence[str] = (),
    python: str = sys.executable,
) -> subprocess.Popen[str]:
    code_dir = tmp_path / "code"
    code_dir.mkdir(exist_ok=True)
    (code_dir / "worker.py").write_text(script)
    # A clean environment: only what the test sets reaches the worker.
    full_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT), **env}
    return subprocess.Popen(
        [python, "worker.py", *argv],
        cwd=code_dir,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_worker(
    tmp_path: Path,
    script: str,
    env: Mapping[str, str],
    argv: Sequence[str] = (),
    python: str = sys.executable,
) -> subprocess.CompletedProcess[str]:
    worker = start_worker(tmp_path, script, env, argv, python)
    stdout, stderr = worker.communicate(timeout=10)
    assert worker.returncode == 0, stderr
    return subprocess.CompletedProcess(worker.args, worker.returncode, stdout, stderr)


def parsed_args(tmp_path: Path, env: Mapping[str, str], argv: Sequence[str] = ()) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_worker(tmp_path, PRINT_ARGS, env, argv).stdout)
    return result


def test_parse_args_reads_the_job_environment(tmp_path: Path) -> None:
    hps = {"task": 1, "msg": "Hello, world!", "rate": 0.5, "layers": [64, 32], "on": True}
    env = job_env(
        tmp_path,
        host="algo-2",
        hosts=["algo-1", "algo-2"],
        channels=["data", "bucket"],
        hps=hps,
        job_name="task1-2024",
    )

    args = parsed_args(tmp_path, env, hp_argv(hps))

    assert args["hps"] == hps
    assert isinstance(args["hps"]["task"], int)
    assert (args["task"], args["msg"], args["layers"]) == (1, "Hello, world!", [64, 32])
    assert args["channel_names"] == ["data", "bucket"]
    assert args["input_data"] == env["SM_CHANNEL_DATA"]
    assert args["input_bucket"] == env["SM_CHANNEL_BUCKET"]
    assert args["state"] == str(tmp_path / "state")
    for field, variable in [
        ("model_dir", "SM_MODEL_DIR"),
        ("output_data_dir", "SM_OUTPUT_DATA_DIR"),
        ("output_dir", "SM_OUTPUT_DIR"),
        ("input_dir", "SM_INPUT_DIR"),
        ("input_config_dir", "SM_INPUT_CONFIG_DIR"),
    ]:
        assert args[field] == env[variable]
    assert (args["current_host"], args["hosts"]) == ("algo-2", ["algo-1", "algo-2"])
    assert (args["num_cpus"], args["num_gpus"]) == (4, 0)
    assert args["job_name"] == "task1-2024"


def test_input_data_is_empty_without_a_data_channel(tmp_path: Path) -> None:
    env = job_env(tmp_path, channels=["bucket"])

    args = parsed_args(tmp_path, env)

    assert args["input_data"] == ""
    assert args["input_bucket"] == env["SM_CHANNEL_BUCKET"]


def test_hyperparameter_named_like_a_field_stays_in_hps(tmp_path: Path) -> None:
    hps = {"state": "mine", "input_data": "x", "hosts": 3}
    env = job_env(tmp_path, channels=["data"], hps=hps)

    args = parsed_args(tmp_path, env, hp_argv(hps))

    assert args["hps"] == hps
    assert args["state"] == str(tmp_path / "state")
    assert args["input_data"] == env["SM_CHANNEL_DATA"]
    assert args["hosts"] == ["algo-1"]


def test_channel_name_that_is_no_identifier_also_gets_one(tmp_path: Path) -> None:
    env = job_env(tmp_path, channels=["task6-1.model"])

    args = parsed_args(tmp_path, env)

    assert args["input_task6-1.model"] == env["SM_CHANNEL_TASK6-1.MODEL"]
    assert args["input_task6_1_model"] == env["SM_CHANNEL_TASK6-1.MODEL"]


def test_job_name_falls_back_to_the_training_env(tmp_path: Path) -> None:
    env = job_env(tmp_path, job_name="from-training-env")
    del env["TRAINING_JOB_NAME"]

    assert parsed_args(tmp_path, env)["job_name"] == "from-training-env"


def test_sagemaker_config_files_stand_in_for_missing_variables(tmp_path: Path) -> None:
    input_dir = tmp_path / "input"
    config_dir = input_dir / "config"
    config_dir.mkdir(parents=True)
    (input_dir / "data" / "train").mkdir(parents=True)
    (config_dir / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-3", "hosts": ["algo-1", "algo-2", "algo-3"]})
    )
    # SageMaker stores every hyperparameter as a string, most of them JSON-encoded.
    (config_dir / "hyperparameters.json").write_text(
        json.dumps({"task": "2", "msg": '"hi"', "raw": "not json", "sagemaker_program": '"w.py"'})
    )
    (config_dir / "inputdataconfig.json").write_text(
        json.dumps({"train": {"TrainingInputMode": "File"}})
    )

    args = parsed_args(tmp_path, {"SM_INPUT_DIR": str(input_dir)}, ["--task", "2", "--msg", "hi"])

    assert (args["current_host"], args["hosts"]) == ("algo-3", ["algo-1", "algo-2", "algo-3"])
    assert args["hps"] == {"task": 2, "msg": "hi", "raw": "not json"}
    assert args["channel_names"] == ["train"]
    assert args["input_train"] == str(input_dir / "data" / "train")
    assert args["input_config_dir"] == str(config_dir)


@pytest.mark.skipif(os.path.exists("/opt/ml"), reason="runs inside a SageMaker container")
def test_outside_any_job_the_command_line_holds_the_hyperparameters(tmp_path: Path) -> None:
    args = parsed_args(tmp_path, {}, ["--task", "1", "--msg", "hi there", "--fast", "--n=3"])

    assert args["hps"] == {"task": 1, "msg": "hi there", "fast": True, "n": 3}
    assert args["model_dir"] == "/opt/ml/model"
    assert args["output_data_dir"] == "/opt/ml/output/data"
    assert args["state"] == worker_lib.DEFAULT_STATE_DIR == "/state"
    assert (args["input_data"], args["channel_names"]) == ("", [])
    assert (args["current_host"], args["hosts"]) == ("algo-1", ["algo-1"])
    assert args["num_cpus"] >= 1


def test_init_multi_workers_state_creates_the_instance_dir(tmp_path: Path) -> None:
    script = """
import logging
from worker_toolkit import worker_lib
worker_lib.setDebugLevel()
print(worker_lib.initMultiWorkersState(worker_lib.parseArgs()))
"""
    env = job_env(tmp_path, host="algo-2", hosts=["algo-1", "algo-2"])

    result = run_worker(tmp_path, script, env)

    state_dir = tmp_path / "state" / "algo-2"
    assert state_dir.is_dir()
    assert str(state_dir) in result.stdout.splitlines()
    assert "INFO:worker_toolkit.worker_lib:Creating instance specific state dir" in result.stdout


def test_mark_completed_by_every_instance_completes_the_job(tmp_path: Path) -> None:
    script = """
from worker_toolkit import worker_lib
worker_lib.setDebugLevel()
worker_lib.markCompleted(worker_lib.parseArgs())
"""
    hosts = ["algo-1", "algo-2"]
    state = tmp_path / "state"

    for host in hosts:
        result = run_worker(tmp_path, script, job_env(tmp_path, host=host, hosts=hosts))
        assert f"Marking instance {host} completion" in result.stdout
        assert (state / host / "__COMPLETED__").read_text() == "job-1"

    assert worker_lib.isCompleted(str(state), hosts, "job-1")


def mark(state: Path, host: str, job_name: str) -> None:
    worker_lib.markCompleted(
        argparse.Namespace(state=str(state), current_host=host, job_name=job_name)
    )


def test_is_completed_needs_every_host(tmp_path: Path) -> None:
    mark(tmp_path, "algo-1", "job-2")

    assert worker_lib.isCompleted(str(tmp_path), ["algo-1"], "job-2")
    assert not worker_lib.isCompleted(str(tmp_path), ["algo-1", "algo-2"], "job-2")


def test_is_completed_ignores_markers_of_older_jobs(tmp_path: Path) -> None:
    mark(tmp_path, "algo-1", "job-2")
    mark(tmp_path, "algo-2", "job-1")

    assert not worker_lib.isCompleted(str(tmp_path), ["algo-1", "algo-2"], "job-2")


def test_is_completed_is_false_without_hosts_or_state(tmp_path: Path) -> None:
    assert not worker_lib.isCompleted(str(tmp_path), [], "job-1")
    assert not worker_lib.isCompleted(str(tmp_path / "missing"), ["algo-1"], "job-1")


def test_sigterm_runs_the_callback_and_exits_143(tmp_path: Path) -> None:
    script = """
import os, sys, time
from worker_toolkit import worker_lib
args = worker_lib.parseArgs()
state_dir = worker_lib.initMultiWorkersState(args)
def save():
    with open(os.path.join(state_dir, "checkpoint"), "w") as f:
        f.write("saved")
    print("callback ran", flush=True)
worker_lib.onTermination(save)
print("ready", flush=True)
time.sleep(30)
print("not interrupted")
"""
    worker = start_worker(tmp_path, script, job_env(tmp_path))
    assert worker.stdout is not None
    assert worker.stdout.readline() == "ready\n"

    worker.send_signal(signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=10)

    assert worker.returncode == worker_lib.TERMINATED_EXIT_STATUS == 143, stderr
    assert stdout == "callback ran\n"
    assert (tmp_path / "state" / "algo-1" / "checkpoint").read_text() == "saved"


def test_sigterm_without_callback_only_requests_termination(tmp_path: Path) -> None:
    script = """
import time
from worker_toolkit import worker_lib
worker_lib.onTermination()
print(worker_lib.terminationRequested(), flush=True)
while not worker_lib.terminationRequested():
    time.sleep(0.01)
print("stopped cleanly")
"""
    worker = start_worker(tmp_path, script, job_env(tmp_path))
    assert worker.stdout is not None
    assert worker.stdout.readline() == "False\n"

    worker.send_signal(signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=10)

    assert worker.returncode == 0, stderr
    assert stdout == "stopped cleanly\n"


LOG_BOTH = """
import logging
from worker_toolkit import worker_lib
worker_lib.setDebugLevel()
logging.getLogger("worker").debug("a debug line")
logging.getLogger("worker").info("an info line")
"""


def test_set_debug_level_shows_info_on_stdout(tmp_path: Path) -> None:
    stdout = run_worker(tmp_path, LOG_BOTH, job_env(tmp_path)).stdout

    assert stdout == "INFO:worker:an info line\n"


def test_set_debug_level_follows_ssm_debug_level(tmp_path: Path) -> None:
    env = {**job_env(tmp_path), "SSM_DEBUG_LEVEL": "debug"}

    stdout = run_worker(tmp_path, LOG_BOTH, env).stdout

    assert stdout == "DEBUG:worker:a debug line\nINFO:worker:an info line\n"


def test_worker_lib_is_python_3_6_syntax() -> None:
    source = Path(worker_lib.__file__).read_text()

    ast.parse(source, feature_version=(3, 6))


def test_outside_a_job_the_arguments_read_as_sagemaker_renders_them(tmp_path: Path) -> None:
    argv = ["-k", "5", "--verbose", "True", "--layers", "[64, 32]", "--names", "['a', 'b']"]
    argv += ["--lr", "-0.5", "--name", "resnet", "-x"]

    args = parsed_args(tmp_path, {}, argv)

    assert args["hps"] == {
        "k": 5,
        "verbose": True,
        "layers": [64, 32],
        "names": ["a", "b"],
        "lr": -0.5,
        "name": "resnet",
        "x": True,
    }


def test_extract_upstream_unpacks_a_model_channel(project: ProjectDir) -> None:
    project.ssmfile(
        """
        [tasks.prepare]
        entry_point = "prepare.py"

        [tasks.train]
        entry_point = "train.py"
        inputs.prepared = { task = "prepare", output = "model" }
        """
    )
    project.write(
        "prepare.py",
        "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'w.txt'), 'w').write('42')\n",
    )
    project.write(
        "train.py",
        """
        import os
        from worker_toolkit import worker_lib
        args = worker_lib.parseArgs()
        print("delivered:", sorted(os.listdir(args.input_prepared)))
        here = worker_lib.extractUpstream(args.input_prepared)
        print("extracted:", open(os.path.join(here, "w.txt")).read())
        """,
    )

    result = project.run()

    assert result.code == 0, result.err
    assert "delivered: ['model.tar.gz']" in result.err
    assert "extracted: 42" in result.err


def test_extract_upstream_refuses_members_outside(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    channel.mkdir()
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        tar.add(evil, arcname="../escaped.txt")

    with pytest.raises(ValueError, match=r"refusing the member '\.\./escaped\.txt'"):
        worker_lib.extractUpstream(str(channel), str(tmp_path / "out"))
    assert not (tmp_path / "escaped.txt").exists()
