"""Ctrl-C and timeouts on the local backend: jobs stopped, no marker, state kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ProjectDir

from ssmake.backends.local.executor import LocalExecutor
from ssmake.build.staging import worker_toolkit_files
from ssmake.plan.jobspec import build_job_spec
from ssmake.project.model import Task
from ssmake.stores.archive import pack_code
from ssmake.stores.local import LocalStore

SLOW = """
import os, time
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
Path(args.state, f"pid-{args.current_host}").write_text(str(os.getpid()))
Path(os.environ["MARK"]).write_text("started")
time.sleep(60)
"""


def wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_ctrl_c_stops_the_job_leaves_no_marker_and_exits_130(project: ProjectDir) -> None:
    mark = project.root / "started"
    project.ssmfile(
        f"""
        [tasks.slow]
        entry_point = "slow.py"
        instance_count = 2
        environment = {{ MARK = "{mark}" }}
        """
    )
    project.write("slow.py", SLOW)
    env = dict(os.environ, SSMAKE_STOP_GRACE_SECONDS="2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssmake.cli", "-C", str(project.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    wait_for(mark)
    run_dir = project.root / ".ssmake/cache/runs"
    pid_files = []
    deadline = time.monotonic() + 10
    while len(pid_files) < 2 and time.monotonic() < deadline:
        pid_files = list(run_dir.glob("*/algo-*/state/pid-*"))
        time.sleep(0.05)
    pids = [int(p.read_text()) for p in pid_files]

    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert pids and not any(alive(pid) for pid in pids)
    task_dir = project.store(project.root.name, "slow")
    assert not (task_dir / "ssmake.json").exists()
    assert not (task_dir / "inflight.json").exists()
    # State written before the stop is kept for the next run.
    assert (task_dir / "state" / "pid-algo-1").exists()


CAPPED = """
import time
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
worker_lib.onTermination(lambda: Path(args.state, "checkpoint").write_text("saved"))
print("working", flush=True)
time.sleep(600)
"""


def test_max_run_stops_the_job_with_sigterm_and_state_is_kept(tmp_path: Path) -> None:
    # The spec is plain data: run the executor on one whose max run is 1 second.
    store = LocalStore(tmp_path / "store")
    code = tmp_path / "code.tar.gz"
    (tmp_path / "capped.py").write_text(CAPPED)
    pack_code(code, [("capped.py", tmp_path / "capped.py"), *worker_toolkit_files().items()])
    store.put_file("p/capped/code/x.tar.gz", code)
    task = Task(name="capped", entry_point="capped.py", spot=False)
    spec = build_job_spec(
        task,
        project="p",
        job_name="capped-1",
        fingerprint="0" * 64,
        entry_point="capped.py",
        code_uri=store.uri("p/capped/code/x.tar.gz"),
        output_uri=store.uri("p/capped/"),
        state_uri=store.uri("p/capped/state/"),
        channels=[],
        image_uri="local",
        role_arn="arn:aws:iam::000000000000:role/x",
        region=None,
    )
    spec["StoppingCondition"]["MaxRuntimeInSeconds"] = 1
    lines: list[str] = []
    executor = LocalExecutor(
        spec,
        tmp_path / "run",
        venv_cache=tmp_path / "venvs",
        on_log=lambda host, line: lines.append(line),
        grace_seconds=5,
    )

    result = executor.run()

    assert result.status == "Stopped"
    assert "MaxRuntimeExceeded" in result.failure_reason
    assert "working" in lines
    assert store.get("p/capped/state/checkpoint") == b"saved"
    assert not store.exists("p/capped/capped-1/output/model.tar.gz")


def test_cancel_stops_a_job_run_by_another_ssmake(project: ProjectDir) -> None:
    mark = project.root / "started"
    project.ssmfile(
        f"""
        [tasks.slow]
        entry_point = "slow.py"
        environment = {{ MARK = "{mark}" }}
        """
    )
    project.write("slow.py", SLOW)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssmake.cli", "-C", str(project.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, SSMAKE_STOP_GRACE_SECONDS="2"),
    )
    wait_for(mark)

    cancel = project.run("cancel", "slow")
    _out, err = proc.communicate(timeout=30)

    assert cancel.code == 0, cancel.err
    assert "stopping job slow-" in cancel.err
    assert proc.returncode == 1, err
    assert "cancelled (ssmake cancel); no marker written" in err
    assert "FAILED" not in err and "signal 15" not in err
    assert "1 cancelled" in err
    assert not project.store(project.root.name, "slow", "ssmake.json").exists()


def test_cancel_without_a_running_job_is_an_error(project: ProjectDir) -> None:
    project.ssmfile('[tasks.idle]\nentry_point = "idle.py"\n')
    project.write("idle.py", "pass\n")

    result = project.run("cancel", "idle")

    assert result.code == 2
    assert "task idle has no running job" in result.err


def test_jobs_must_be_positive(project: ProjectDir) -> None:
    project.ssmfile('[tasks.idle]\nentry_point = "idle.py"\n')
    project.write("idle.py", "pass\n")

    result = project.run("-j", "0")

    assert result.code == 2
    assert "must be at least 1, got 0" in result.err
