"""Reliability on the local backend: concurrent builds, a killed client, dead records.

Every test drives real `ssmake` processes (or the CLI in-process) on a real
project. A worker appends one line per start and per finish to a file outside
the project, so "how many jobs ran" is counted, not inferred. Waits are bounded
polls on something observable; no sleep stands in for an assertion.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ProjectDir

import ssmake
from ssmake.build.engine import Engine, Outcome
from ssmake.build.runner import TaskRunner
from ssmake.build.session import open_session
from ssmake.events import Event, Notice, ignore_events
from ssmake.plan.planner import Planner
from ssmake.project.load import load_project
from ssmake.stores.local import LocalStore

if TYPE_CHECKING:
    from aws_fixtures import AwsEnv, SageMakerEmulator

# -- helpers --------------------------------------------------------------------

CHECKOUT = str(Path(ssmake.__file__).resolve().parent.parent)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll `condition` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as dead: it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def tar_files(path: Path) -> dict[str, bytes]:
    """The regular files of a tarball: name -> content."""
    with tarfile.open(path) as tar:
        return {m.name: f.read() for m in tar if m.isfile() and (f := tar.extractfile(m))}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


class Client:
    """One `ssmake` process on a project, its stderr in a file to poll."""

    def __init__(self, project: ProjectDir, env: dict[str, str], name: str, *args: str) -> None:
        self.err_path = project.root.parent / f"{name}.err"
        self._err = self.err_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ssmake.cli", "run", "-C", str(project.root), *args],
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            env=env,
        )

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._err.close()

    def kill(self) -> None:
        """SIGKILL the client alone: its job's workers live on, orphaned."""
        self.proc.send_signal(signal.SIGKILL)
        self.wait()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """The file workers append `start|done <job> <host> <pid>` lines to."""
    return tmp_path / "journal"


@pytest.fixture
def client_env(journal: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of `ssmake` subprocesses: this checkout's ssmake, fast stops."""
    env = dict(os.environ)
    env.update(
        JOURNAL=str(journal),
        GATE=str(tmp_path / "gate"),
        SSMAKE_STOP_GRACE_SECONDS="2",
        PYTHONPATH=os.pathsep.join([CHECKOUT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    yield env


def entries(journal: Path, kind: str) -> list[list[str]]:
    return [line.split()[1:] for line in lines(journal) if line.split()[0] == kind]


# A worker that records its start, waits for the test's gate (bounded), records
# its end. With RESUME, it keeps a counter in the task's state to show resumption.
GATED = """
import os, time
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
job = os.environ["TRAINING_JOB_NAME"]

def note(kind):
    with open(os.environ["JOURNAL"], "a") as f:
        f.write(f"{kind} {job} {args.current_host} {os.getpid()}\\n")

progress = Path(args.state, f"progress-{args.current_host}")
before = progress.read_text() if progress.exists() else ""
progress.write_text(before + "x")
note("start")
if not before:
    gate = Path(os.environ["GATE"])
    deadline = time.monotonic() + 40
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
Path(args.model_dir, f"model-{args.current_host}").write_text(before + "x")
note("done")
"""

ONE_TASK = """
[tasks.train]
entry_point = "train.py"
instance_count = 2
"""


def task_dir(project: ProjectDir, task: str = "train") -> Path:
    return project.store(project.root.name, task)


def read_marker(project: ProjectDir, task: str = "train") -> dict[str, object] | None:
    path = task_dir(project, task) / "ssmake.json"
    return json.loads(path.read_text()) if path.exists() else None


# -- concurrency ------------------------------------------------------------------


def test_two_clients_run_a_stale_task_once(
    project: ProjectDir, client_env: dict[str, str], journal: Path, tmp_path: Path
) -> None:
    project.ssmfile(ONE_TASK)
    project.write("train.py", GATED)
    first = Client(project, client_env, "first")
    wait_until(lambda: len(entries(journal, "start")) == 2, "the first client's job to start")

    second = Client(project, client_env, "second")
    wait_until(lambda: "waiting for it" in second.err, "the second client to wait")
    (tmp_path / "gate").touch()

    assert first.wait() == 0, first.err
    assert second.wait() == 0, second.err
    assert len(entries(journal, "start")) == 2  # one job of two instances, once
    assert len(entries(journal, "done")) == 2
    assert "train is up to date" in second.err
    assert "launched job" not in second.err
    marker = read_marker(project)
    assert marker is not None
    assert {e[0] for e in entries(journal, "done")} == {marker["job"]}
    runs = list((task_dir(project) / "runs").iterdir())
    assert [p.stem for p in runs] == [marker["fingerprint"]]
    assert not (task_dir(project) / "inflight.json").exists()


class RacingStore(LocalStore):
    """A real local store that lets `other` run just before the first claim of a task:
    the window between this process's plan and its claim."""

    def __init__(self, root: Path, other: Callable[[], None]) -> None:
        super().__init__(root)
        self.other: Callable[[], None] | None = other

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if key.endswith("/inflight.json") and self.other is not None:
            other, self.other = self.other, None
            other()
        return super().put_if_absent(key, data)


def test_a_client_that_planned_before_another_finished_does_not_rerun(
    project: ProjectDir, client_env: dict[str, str], journal: Path, tmp_path: Path
) -> None:
    # This client judged the task stale; another one ran it to the end and released
    # its claim before this one claimed: no wait can see that, the claim must.
    (tmp_path / "gate").touch()
    project.ssmfile(ONE_TASK)
    project.write("train.py", GATED)

    def other_client() -> None:
        other = Client(project, client_env, "other")
        assert other.wait() == 0, other.err

    session = open_session(load_project(project.root))
    store = RacingStore(project.store(), other_client)
    planner = Planner(session.project, store, session.fingerprinter)
    backend = session.backend()
    runner = TaskRunner(
        session.project, store, backend, planner, ignore_events, work_dir=session.work_dir
    )
    engine = Engine(session.project, planner, runner, backend, ignore_events)

    (outcome,) = engine.build(["train"]).outcomes

    assert store.other is None  # the other client did run in the window
    assert outcome.status == "up-to-date"
    assert len(entries(journal, "start")) == 2  # its job only
    marker = read_marker(project)
    assert marker is not None and outcome.job == marker["job"]
    assert not (task_dir(project) / "inflight.json").exists()


PARALLEL = "\n".join(
    f"""
[tasks.t{i}]
entry_point = "work.py"
instance_count = 2
hyperparameters = {{ me = "t{i}" }}
inputs.data = {{ path = "data{i}", distribution = "ShardedByS3Key" }}
"""
    for i in range(6)
) + (
    """
[tasks.join]
entry_point = "work.py"
hyperparameters = { me = "join" }
"""
    + "".join(f'inputs.m{i} = {{ task = "t{i}", output = "model" }}\n' for i in range(6))
)

WORK = """
import os
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
me = args.hps["me"]
job = os.environ["TRAINING_JOB_NAME"]
seen = sorted(p.name for p in Path(args.input_data).iterdir()) if args.input_data else []
body = f"{me} {job} {args.current_host} {','.join(seen)}"
Path(args.model_dir, f"{me}-{args.current_host}").write_text(body)
Path(args.output_data_dir, "who").write_text(body)
Path(args.state, f"{me}-{args.current_host}").write_text(body)
"""


def test_parallel_builds_keep_each_tasks_store_consistent(
    project: ProjectDir, client_env: dict[str, str]
) -> None:
    # Six tasks at once (-j 6) in each of two concurrent clients: every task's
    # prefix holds only its own job's files, and its marker agrees with them.
    project.ssmfile(PARALLEL)
    project.write("work.py", WORK)
    for i in range(6):
        for k in range(5):
            project.write(f"data{i}/f{k}", f"{i}-{k}")
    clients = [Client(project, client_env, f"c{n}", "-j", "6") for n in range(2)]
    for client in clients:
        assert client.wait() == 0, client.err

    store = task_dir(project).parent
    for name in [f"t{i}" for i in range(6)] + ["join"]:
        tdir = store / name
        marker = json.loads((tdir / "ssmake.json").read_text())
        job = marker["job"]
        assert json.loads((tdir / "runs" / f"{marker['fingerprint']}.json").read_text()) == marker
        jobs = {p.name for p in tdir.iterdir() if p.is_dir()} - {"runs", "state", "code", "input"}
        assert jobs == {job}, f"{name}: jobs {jobs}"  # one job per task, across both clients
        for kind in ("model", "output"):
            key = marker["outputs"][kind]["key"]
            assert key == f"{project.root.name}/{name}/{job}/output/{kind}.tar.gz"
            st = (store.parent / key).stat()
            assert marker["outputs"][kind]["size"] == st.st_size
        model = tar_files(tdir / job / "output" / "model.tar.gz")
        bodies = sorted(b.decode() for b in model.values())
        hosts = ["algo-1"] if name == "join" else ["algo-1", "algo-2"]
        assert [b.split()[:3] for b in bodies] == [[name, job, h] for h in hosts]
        if name != "join":
            shards = [set(b.split()[3].split(",")) for b in bodies]
            assert set.union(*shards) == {f"f{k}" for k in range(5)}
            assert not set.intersection(*shards)
        state = sorted(p.name for p in (tdir / "state").iterdir())
        assert state == [f"{name}-{h}" for h in hosts]
        assert not (tdir / "inflight.json").exists()
    leftovers = [p for p in project.store().rglob(".*.tmp")]
    assert not leftovers


# -- a client killed mid-job --------------------------------------------------------


def start_and_kill(project: ProjectDir, env: dict[str, str], journal: Path) -> list[int]:
    """Start a build, SIGKILL its client once both instances run; their pids."""
    client = Client(project, env, "killed")
    wait_until(lambda: len(entries(journal, "start")) == 2, "the job to start")
    client.kill()
    return [int(pid) for _job, _host, pid in entries(journal, "start")]


def decoy(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A process that is not ours although it bears the job's name: say, the same
    project checked out elsewhere."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env=env,
        start_new_session=True,
    )


def test_a_killed_client_is_taken_over_its_orphans_stopped_and_its_state_kept(
    project: ProjectDir, client_env: dict[str, str], journal: Path
) -> None:
    project.ssmfile(ONE_TASK)
    project.write("train.py", GATED)
    orphans = start_and_kill(project, client_env, journal)
    dead_job = entries(journal, "start")[0][0]
    assert all(alive(pid) for pid in orphans)  # left running by the dead client
    assert read_marker(project) is None
    assert (task_dir(project) / "inflight.json").exists()
    elsewhere = dict(client_env, TRAINING_JOB_NAME=dead_job, SSM_STATE_DIR="/elsewhere/state")
    stranger = decoy(elsewhere)
    try:
        rerun = Client(project, client_env, "rerun")

        assert rerun.wait() == 0, rerun.err
        assert f"taking over from job {dead_job} of ssmake pid" in rerun.err
        assert "stopped 2 orphaned worker process group(s); kept the state it wrote" in rerun.err
        assert not any(alive(pid) for pid in orphans)
        assert stranger.poll() is None  # not ours: left alone
    finally:
        stranger.kill()
        stranger.wait()
    marker = read_marker(project)
    assert marker is not None
    job = str(marker["job"])
    assert job != dead_job and job.endswith("-2")
    assert [e[0] for e in entries(journal, "done")] == [job, job]  # one job completed
    # The dead job's state was kept and the new job resumed from it.
    for host in ("algo-1", "algo-2"):
        assert (task_dir(project) / "state" / f"progress-{host}").read_text() == "xx"
    assert tar_files(task_dir(project) / job / "output" / "model.tar.gz") == {
        "model-algo-1": b"xx",
        "model-algo-2": b"xx",
    }
    assert (task_dir(project) / dead_job / "logs" / "algo-1.log").exists()
    leftovers = {p.name for p in task_dir(project).iterdir()} - {
        "state",
        "code",
        "runs",
        "ssmake.json",
        dead_job,
        job,
    }
    assert not leftovers  # no in-flight record, no takeover lock


def test_clients_racing_to_take_over_a_dead_job_run_it_once(
    project: ProjectDir, client_env: dict[str, str], journal: Path
) -> None:
    project.ssmfile(ONE_TASK)
    project.write("train.py", GATED)
    orphans = start_and_kill(project, client_env, journal)

    clients = [Client(project, client_env, f"racer{n}") for n in range(3)]

    for client in clients:
        assert client.wait() == 0, client.err
    assert not any(alive(pid) for pid in orphans)
    assert sum("taking over from job" in c.err for c in clients) == 1
    assert sum("launched job" in c.err for c in clients) == 1
    done = entries(journal, "done")
    assert len(done) == 2 and done[0][0] == done[1][0]


def test_a_reused_pid_does_not_pass_for_the_dead_client(
    project: ProjectDir, client_env: dict[str, str], journal: Path, tmp_path: Path
) -> None:
    # The record names a live pid (this test's), but another process's: its start
    # time differs. Believing it would wait forever.
    (tmp_path / "gate").touch()
    project.ssmfile(ONE_TASK)
    project.write("train.py", GATED)
    record = {
        "job": "train-0123456789-1",
        "fingerprint": "0123456789",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": "1",
        "backend": "local",
    }
    inflight = task_dir(project) / "inflight.json"
    inflight.parent.mkdir(parents=True)
    inflight.write_text(json.dumps(record))

    client = Client(project, client_env, "after-reuse")
    try:
        assert client.wait(timeout=30) == 0, client.err
    finally:
        client.proc.kill()
    assert "taking over from job train-0123456789-1" in client.err
    assert len(entries(journal, "done")) == 2


def test_an_unreadable_inflight_record_is_replaced(
    project: ProjectDir, client_env: dict[str, str], journal: Path, tmp_path: Path
) -> None:
    (tmp_path / "gate").touch()
    project.ssmfile(ONE_TASK)
    project.write("train.py", GATED)
    inflight = task_dir(project) / "inflight.json"
    inflight.parent.mkdir(parents=True)
    inflight.write_bytes(b"\x00{not json")

    client = Client(project, client_env, "after-garbage")

    assert client.wait() == 0, client.err
    assert "taking over from a damaged in-flight record" in client.err
    assert len(entries(journal, "done")) == 2
    assert not inflight.exists()


# -- job termination ------------------------------------------------------------------

CHECKPOINTED = """
import os, time
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
saved = Path(args.state, "step")
step = int(saved.read_text()) if saved.exists() else 0
worker_lib.onTermination(lambda: saved.write_text(str(step)))
with open(os.environ["JOURNAL"], "a") as f:
    f.write(f"start {os.environ['TRAINING_JOB_NAME']} {step} {os.getpid()}\\n")
if step == 0:
    step = 7  # work done before the interruption
    while not worker_lib.terminationRequested():
        time.sleep(0.02)
    raise SystemExit(worker_lib.TERMINATED_EXIT_STATUS)
Path(args.model_dir, "resumed-at").write_text(str(step))
"""


def test_an_interrupted_job_saves_its_state_on_sigterm_and_the_rerun_resumes(
    project: ProjectDir, client_env: dict[str, str], journal: Path
) -> None:
    project.ssmfile(
        """
        [tasks.train]
        entry_point = "train.py"
        """
    )
    project.write("train.py", CHECKPOINTED)
    client = Client(project, client_env, "interrupted")
    wait_until(lambda: entries(journal, "start"), "the job to start")

    client.proc.send_signal(signal.SIGINT)  # Ctrl-C: the job gets SIGTERM

    assert client.wait() == 130, client.err
    assert read_marker(project) is None  # the task stays stale
    assert (task_dir(project) / "state" / "step").read_text() == "7"
    rerun = Client(project, client_env, "resumed")
    assert rerun.wait() == 0, rerun.err
    marker = read_marker(project)
    assert marker is not None
    model = tar_files(task_dir(project) / str(marker["job"]) / "output" / "model.tar.gz")
    assert model == {"resumed-at": b"7"}


STUBBORN = """
import os, signal, time
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
Path(args.state, "before-stop").write_text("kept")
with open(os.environ["JOURNAL"], "a") as f:
    f.write(f"start {os.environ['TRAINING_JOB_NAME']} {args.current_host} {os.getpid()}\\n")
time.sleep(60)
"""


def test_a_worker_ignoring_sigterm_is_killed_after_the_grace_period(
    project: ProjectDir, client_env: dict[str, str], journal: Path
) -> None:
    project.ssmfile(
        """
        [tasks.train]
        entry_point = "train.py"
        """
    )
    project.write("train.py", STUBBORN)
    client = Client(project, dict(client_env, SSMAKE_STOP_GRACE_SECONDS="1"), "stubborn")
    wait_until(lambda: entries(journal, "start"), "the job to start")
    [(_job, _host, pid)] = entries(journal, "start")
    started = time.monotonic()

    client.proc.send_signal(signal.SIGINT)

    assert client.wait() == 130, client.err
    assert time.monotonic() - started < 30  # SIGKILL came after the grace, not after 60 s
    assert not alive(int(pid))
    assert (task_dir(project) / "state" / "before-stop").read_text() == "kept"
    assert read_marker(project) is None


SPOT_PROJECT = """
[project]
backend = "sagemaker"
store = "s3://bucket"
region = "us-east-1"

[defaults]
image = { uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1" }

[tasks.forgetful]
entry_point = "forgetful.py"

[tasks.careful]
source_dir = "careful"
entry_point = "main.py"

[tasks.ondemand]
entry_point = "forgetful.py"
spot = false
"""


def test_spot_jobs_that_never_touch_state_get_a_warning(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    project.ssmfile(SPOT_PROJECT)
    project.write("forgetful.py", "print('no checkpoints here')\n")
    project.write("careful/main.py", "import helpers\nhelpers.save()\n")
    project.write("careful/helpers.py", "CHECKPOINTS = '/state/ckpt'\n\ndef save():\n    pass\n")

    result = project.run()

    warning = "spot job without checkpointing: an interruption restarts it from scratch"
    assert result.code == 0, result.err
    assert len(sagemaker_emulator.requests) == 3  # launched (and run) for real
    assert f"ssmake: forgetful: warning: {warning}" in result.err
    assert result.err.count(warning) == 1  # not careful (a helper mentions /state), nor ondemand


def test_spot_means_nothing_locally(project: ProjectDir) -> None:
    project.ssmfile(
        """
        [tasks.train]
        entry_point = "train.py"
        spot = true
        """
    )
    project.write("train.py", "print('hi')\n")

    result = project.run()

    assert result.code == 0, result.err
    assert "spot job without checkpointing" not in result.err


# -- secrets ----------------------------------------------------------------------------

TASK_SECRET = "tok-6f1b2c9e4d0a8b7f31"
CLIENT_SECRET = "aws-secret-5e3d9c1a7b20c4"

USES_SECRET = """
import hashlib, os
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
token = os.environ["API_TOKEN"]
print("token received:", len(token), "characters")
Path(args.model_dir, "token.sha256").write_text(hashlib.sha256(token.encode()).hexdigest())
Path(args.state, "seen").write_text("yes")
"""


def run_ssmake(project: ProjectDir, env: dict[str, str], *args: str) -> str:
    """Run `ssmake ARGS` in the project; its stdout and stderr together."""
    done = subprocess.run(
        [sys.executable, "-m", "ssmake.cli", *args[:1], "-C", str(project.root), *args[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def test_secrets_never_reach_the_store_the_terminal_or_the_marker(
    project: ProjectDir, client_env: dict[str, str]
) -> None:
    ssmfile = """
        [tasks.train]
        entry_point = "train.py"
        environment = {{ API_TOKEN = "{token}" }}
        download = ["model", "output", "state", "logs"]
        output_path = "out"
        """
    project.ssmfile(ssmfile.format(token=TASK_SECRET))
    project.write("train.py", USES_SECRET)
    env = dict(client_env, AWS_SECRET_ACCESS_KEY=CLIENT_SECRET, AWS_SESSION_TOKEN=CLIENT_SECRET)

    said = [run_ssmake(project, env, "run", "-v", "-v")]
    assert said[0].startswith("exit 0"), said[0]
    said.append(run_ssmake(project, env, "run", "--json"))
    project.ssmfile(ssmfile.format(token=TASK_SECRET[::-1]))
    for command in (["explain", "train"], ["status"], ["run", "-n", "--json"], ["logs", "train"]):
        said.append(run_ssmake(project, env, *command))
    assert "environment.API_TOKEN: value changed" in said[2]
    said.append(run_ssmake(project, env, "download", "train", "--state", "-o", "fetched"))

    digest = hashlib.sha256(TASK_SECRET.encode()).hexdigest()
    assert (project.root / "out" / "model" / "token.sha256").read_text() == digest  # delivered
    for secret in (TASK_SECRET, CLIENT_SECRET):
        for text in said:
            assert secret not in text
        leaks = [
            p
            for p in project.root.rglob("*")
            if p.is_file() and p.name != "Ssmfile.toml" and secret.encode() in p.read_bytes()
        ]
        assert not leaks, f"{secret} written to {leaks}"
    marker = read_marker(project)
    assert marker is not None
    assert TASK_SECRET not in json.dumps(marker)


# -- SageMaker: jobs outlive ssmake, so a next ssmake reattaches -------------------------

SAGEMAKER_TASK = """
[project]
backend = "sagemaker"
store = "s3://bucket"
region = "us-east-1"

[tasks.train]
entry_point = "train.py"
image = { uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1" }
spot = false
"""

SAGEMAKER_WORKER = """
import os
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
fail = Path(os.environ["FAIL_FLAG"])
if fail.exists():
    fail.unlink()
    raise SystemExit("failing once, as asked")
Path(args.model_dir, "model").write_text(os.environ["TRAINING_JOB_NAME"])
"""


class Build:
    """One ssmake build on the SageMaker backend (polling fast), on its own thread."""

    def __init__(self, project: ProjectDir) -> None:
        from ssmake.backends.sagemaker.jobs import SageMakerBackend

        session = open_session(load_project(project.root))
        backend = session.backend(poll_seconds=0.05)
        assert isinstance(backend, SageMakerBackend)
        backend.on_notice = lambda message: None
        self.notices: list[str] = []
        runner = TaskRunner(
            session.project,
            session.store,
            backend,
            session.planner,
            self.report,
            work_dir=session.work_dir,
            image_resolver=backend.image_for,
        )
        self.engine = Engine(session.project, session.planner, runner, backend, self.report)
        self.outcomes: list[Outcome] = []
        self.thread = threading.Thread(target=self._build, daemon=True)
        self.thread.start()

    def report(self, event: Event) -> None:
        if isinstance(event, Notice):
            self.notices.append(event.message)

    def _build(self) -> None:
        self.outcomes.extend(self.engine.build(["train"]).outcomes)

    def result(self) -> Outcome:
        self.thread.join(timeout=60)
        assert self.outcomes, "the build did not end"
        return self.outcomes[0]


@pytest.fixture
def on_sagemaker(
    project: ProjectDir,
    aws: AwsEnv,
    sagemaker_emulator: SageMakerEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Path:
    """A one-task project on the SageMaker backend; returns the worker's fail flag."""
    aws.client("s3").create_bucket(Bucket="bucket")
    project.ssmfile(SAGEMAKER_TASK)
    project.write("train.py", SAGEMAKER_WORKER)
    monkeypatch.setenv("FAIL_FLAG", str(tmp_path / "fail"))
    sagemaker_emulator.hold = True  # created jobs run when the test releases them
    return tmp_path / "fail"


def s3_record(aws: AwsEnv, project: ProjectDir, name: str) -> dict[str, Any] | None:
    key = f"{project.root.name}/train/{name}"
    try:
        body = aws.client("s3").get_object(Bucket="bucket", Key=key)["Body"].read()
    except aws.client("s3").exceptions.NoSuchKey:
        return None
    doc: dict[str, Any] = json.loads(body)
    return doc


def launch_and_detach(project: ProjectDir, emulator: SageMakerEmulator) -> str:
    """A build that launches the job, then is interrupted (Ctrl-C): it detaches."""
    first = Build(project)
    wait_until(lambda: emulator.requests, "the job to be created")
    first.engine.interrupt.set()
    assert first.result().status == "interrupted"
    return str(emulator.requests[0]["TrainingJobName"])


def test_a_detached_sagemaker_job_is_reattached_by_the_next_build(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator, on_sagemaker: Path
) -> None:
    job = launch_and_detach(project, sagemaker_emulator)
    record = s3_record(aws, project, "inflight.json")
    assert record is not None and record["job"] == job and record["launched"] is True

    second = Build(project)
    wait_until(lambda: f"reattaching to job {job}" in second.notices, "the reattach")
    sagemaker_emulator.release(job)  # the job ends while the second build follows it

    outcome = second.result()
    assert (outcome.status, outcome.job) == ("done", job)
    assert len(sagemaker_emulator.requests) == 1  # never launched twice
    marker = s3_record(aws, project, "ssmake.json")
    assert marker is not None and marker["job"] == job
    assert s3_record(aws, project, "inflight.json") is None


def test_a_job_that_completed_while_detached_is_adopted(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator, on_sagemaker: Path
) -> None:
    job = launch_and_detach(project, sagemaker_emulator)
    sagemaker_emulator.release(job)  # it completed while nobody watched

    outcome = Build(project).result()

    assert (outcome.status, outcome.job) == ("done", job)
    assert len(sagemaker_emulator.requests) == 1  # its result was kept, not rerun


def test_two_builds_on_sagemaker_follow_one_job(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator, on_sagemaker: Path
) -> None:
    first = Build(project)
    wait_until(lambda: sagemaker_emulator.requests, "the job to be created")
    job = str(sagemaker_emulator.requests[0]["TrainingJobName"])
    second = Build(project)
    wait_until(lambda: f"reattaching to job {job}" in second.notices, "the second to reattach")

    sagemaker_emulator.release(job)

    assert (first.result().status, first.result().job) == ("done", job)
    assert (second.result().status, second.result().job) == ("done", job)
    assert len(sagemaker_emulator.requests) == 1
    assert s3_record(aws, project, "inflight.json") is None


def test_a_job_that_failed_while_detached_is_run_again(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator, on_sagemaker: Path
) -> None:
    job = launch_and_detach(project, sagemaker_emulator)
    on_sagemaker.touch()  # the worker fails, once
    assert sagemaker_emulator.release(job).status == "Failed"
    sagemaker_emulator.hold = False

    second = Build(project)
    outcome = second.result()

    assert f"job {job} failed; running it again" in second.notices
    assert outcome.status == "done" and outcome.job != job
    assert [r["TrainingJobName"] for r in sagemaker_emulator.requests] == [job, outcome.job]


def test_a_job_of_an_earlier_version_still_running_is_not_joined(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator, on_sagemaker: Path
) -> None:
    job = launch_and_detach(project, sagemaker_emulator)
    project.write("train.py", SAGEMAKER_WORKER + "# edited\n")

    outcome = Build(project).result()

    assert outcome.status == "failed"
    assert f"job {job}, launched for an earlier version of the task, still runs" in outcome.message
    assert "ssmake cancel train" in outcome.message
    assert len(sagemaker_emulator.requests) == 1
    sagemaker_emulator.release(job)


def test_a_running_job_whose_record_was_lost_is_found_not_duplicated(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator, on_sagemaker: Path
) -> None:
    job = launch_and_detach(project, sagemaker_emulator)
    aws.client("s3").delete_object(Bucket="bucket", Key=f"{project.root.name}/train/inflight.json")

    second = Build(project)
    wait_until(lambda: f"reattaching to job {job}" in second.notices, "the backend to find it")
    sagemaker_emulator.release(job)

    assert (second.result().status, second.result().job) == ("done", job)
    assert len(sagemaker_emulator.requests) == 1
