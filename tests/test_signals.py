"""Real signals to a real ssmake process: SIGTERM and SIGHUP as Ctrl-C, a second
Ctrl-C, what a job leaves running, status of a dead claim, a closed pipe."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ProjectDir
from test_interrupt import SLOW, alive, wait_for


def start_ssmake(project: ProjectDir, *args: str, grace: str = "2") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ssmake.cli", *args, "-C", str(project.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, SSMAKE_STOP_GRACE_SECONDS=grace),
    )


def slow_project(project: ProjectDir, worker: str = SLOW) -> Path:
    mark = project.root / "started"
    project.ssmfile(
        f"""
        [tasks.slow]
        entry_point = "slow.py"
        environment = {{ MARK = "{mark}" }}
        """
    )
    project.write("slow.py", worker)
    return mark


def worker_pids(project: ProjectDir) -> list[int]:
    files = list((project.root / ".ssmake/cache/runs").glob("*/algo-*/state/pid-*"))
    return [int(p.read_text()) for p in files]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_the_job_like_ctrl_c(
    project: ProjectDir, sig: signal.Signals, code: int
) -> None:
    mark = slow_project(project)
    proc = start_ssmake(project)
    wait_for(mark)
    pids = worker_pids(project)

    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)

    assert proc.returncode == code, err
    assert f"stopped by {sig.name}" in err
    assert "Traceback" not in err
    assert pids and not any(alive(pid) for pid in pids)
    task_dir = project.store(project.root.name, "slow")
    assert not (task_dir / "ssmake.json").exists()
    assert not (task_dir / "inflight.json").exists()


STUBBORN = """
import os, signal, time
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
Path(args.state, f"pid-{args.current_host}").write_text(str(os.getpid()))
Path(os.environ["MARK"]).write_text("started")
time.sleep(600)
"""


def test_ctrl_c_says_what_it_does_and_a_second_one_kills_at_once(project: ProjectDir) -> None:
    mark = slow_project(project, STUBBORN)
    proc = start_ssmake(project, grace="600")  # the worker ignores SIGTERM for 10 minutes
    wait_for(mark)
    pids = worker_pids(project)
    assert proc.stderr is not None
    said: list[str] = []
    stopping = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            said.append(line)
            if "Ctrl-C again to kill now" in line:
                stopping.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    proc.send_signal(signal.SIGINT)
    assert stopping.wait(30), "".join(said)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    reader.join(timeout=10)
    err = "".join(said)

    assert proc.returncode == 130, err
    assert "stopping slow: SIGTERM sent, SIGKILL in 600 s; Ctrl-C again to kill now" in err
    assert "killing slow: SIGKILL sent" in err
    assert pids and not any(alive(pid) for pid in pids)
    assert not project.store(project.root.name, "slow", "ssmake.json").exists()
    assert not project.store(project.root.name, "slow", "inflight.json").exists()


LEAVES_A_GRANDCHILD = """
import os, subprocess, sys
from pathlib import Path

# One child stays in the worker's process group, one starts a session of its own.
for new_session in (False, True):
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        start_new_session=new_session,
    )
    Path(os.environ["PIDS"], str(child.pid)).touch()
print("done, leaving my children behind")
"""


def test_a_job_leaves_no_process_behind_when_it_ends(project: ProjectDir) -> None:
    pids_dir = project.root / "pids"
    pids_dir.mkdir()
    project.ssmfile(
        f"""
        [tasks.parent]
        entry_point = "parent.py"
        environment = {{ PIDS = "{pids_dir}" }}
        """
    )
    project.write("parent.py", LEAVES_A_GRANDCHILD)

    result = project.run()

    assert result.code == 0, result.err
    children = [int(p.name) for p in pids_dir.iterdir()]
    assert len(children) == 2
    assert not any(alive(pid) for pid in children)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_status_never_shows_a_dead_claim_as_running(project: ProjectDir) -> None:
    project.ssmfile('[tasks.train]\nentry_point = "train.py"\n')
    project.write("train.py", "pass\n")
    plan = json.loads(project.run("-n", "--json").out)
    fingerprint = plan["tasks"][0]["fingerprint"]
    record = {
        "job": "train-0123456789-1",
        "fingerprint": fingerprint,
        "host": socket.gethostname(),
        "pid": dead_pid(),
        "backend": "local",
    }
    inflight = project.store(project.root.name, "train", "inflight.json")
    inflight.parent.mkdir(parents=True)
    inflight.write_text(json.dumps(record))

    result = project.run("status")

    assert result.code == 0, result.err
    assert "running" not in result.out
    assert "train  stale  job train-0123456789-1 was abandoned" in result.out


def test_a_closed_pipe_ends_ssmake_quietly(project: ProjectDir) -> None:
    project.ssmfile("\n".join(f'[tasks.t{i}]\nentry_point = "t.py"\n' for i in range(200)))
    project.write("t.py", "pass\n")
    proc = start_ssmake(project, "graph")
    assert proc.stdout is not None
    proc.stdout.close()  # `| head` that has read enough: nobody reads the rest

    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.wait(timeout=60)

    assert proc.returncode == 1
    assert err == ""
