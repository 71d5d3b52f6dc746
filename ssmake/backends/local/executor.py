"""Runs a JobSpec on this machine, under the same contract as SageMaker's containers.

Each instance (`algo-1` … `algo-N`) is a process with its own base directory
standing in for `/opt/ml`, the `SM_*` variables pointing there, channels
downloaded from the store (sharded when asked), state restored from the
checkpoint prefix, and the job's code extracted as the working directory.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from ssmake.backends.local.venvs import python_for_requirements
from ssmake.errors import BackendError
from ssmake.plan.hashcache import sha256_path
from ssmake.plan.jobspec import JobSpec, sagemaker_param, user_hyperparameters
from ssmake.stores import ObjectInfo, Store, local_path, store_for_uri
from ssmake.stores.archive import extract, pack_dirs

if TYPE_CHECKING:
    from ssmake.backends.local.containers import ContainerProcess

LogFn = Callable[[str, str], None]
DEFAULT_GRACE_SECONDS = 120.0
LOG_TAIL_LINES = 30


@dataclass
class JobResult:
    """How a job ended: Completed, Failed or Stopped, with the failing instance's log tail."""

    status: str
    failure_reason: str = ""
    log_tail: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


@dataclass
class _Instance:
    host: str
    base: Path
    process: subprocess.Popen[bytes] | ContainerProcess | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    reader: threading.Thread | None = None


def _listing(store: Store, prefix: str) -> list[ObjectInfo]:
    objs = [o for o in store.list(prefix) if not o.key.endswith("/")]
    return sorted(objs, key=lambda o: o.key)


def _relative(key: str, prefix: str) -> str:
    # As SageMaker does: the key below the prefix's last "/".
    return key[prefix.rfind("/") + 1 :]


class LocalExecutor:
    """Executes one JobSpec; `stop()` may be called from another thread."""

    def __init__(
        self,
        spec: JobSpec,
        run_dir: Path,
        *,
        venv_cache: Path,
        on_log: LogFn,
        grace_seconds: float | None = None,
        python: str = sys.executable,
        docker_image: str | None = None,
    ) -> None:
        self.spec = spec
        #: Run each instance in this image (`local_docker`) instead of as a process.
        self.docker_image = docker_image
        self.run_dir = run_dir
        self.venv_cache = venv_cache
        self.on_log = on_log
        self.grace_seconds = stop_grace_seconds(grace_seconds)
        self.python = python
        self._stop = threading.Event()
        self._stop_reason = ""
        self._instances: list[_Instance] = []
        self._lock = threading.Lock()
        self._restored_state: dict[str, str] = {}

    @property
    def job_name(self) -> str:
        return str(self.spec["TrainingJobName"])

    def stop(self, reason: str = "stopped by the user") -> None:
        """Ask the job to stop: SIGTERM to every instance, SIGKILL after the grace period."""
        with self._lock:
            if not self._stop_reason:
                self._stop_reason = reason
            self._stop.set()

    # -- setup -------------------------------------------------------------

    def _prepare(self) -> tuple[list[_Instance], Path]:
        count = int(self.spec["ResourceConfig"]["InstanceCount"])
        hosts = [f"algo-{i}" for i in range(1, count + 1)]
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        # What a later ssmake needs to clean up after this job if this process dies:
        # where its state and logs go (never its Environment: it may hold secrets).
        _write_json(
            self.run_dir / JOB_FILE,
            {k: self.spec[k] for k in _RECOVERY_KEYS if k in self.spec},
        )
        code_tar = self.run_dir / "sourcedir.tar.gz"
        store, key = store_for_uri(sagemaker_param(self.spec, "sagemaker_submit_directory"))
        store.get_file(key, code_tar)
        instances = [_Instance(h, self.run_dir / h) for h in hosts]
        for inst in instances:
            for sub in ("model", "output/data", "input/config", "state"):
                (inst.base / sub).mkdir(parents=True, exist_ok=True)
            extract(code_tar, inst.base / "code")
        self._download_channels(instances)
        self._restore_state(instances)
        return instances, code_tar

    def _download_channels(self, instances: list[_Instance]) -> None:
        n = len(instances)
        for channel in self.spec.get("InputDataConfig", []):
            name = channel["ChannelName"]
            source = channel["DataSource"]["S3DataSource"]
            store, prefix = store_for_uri(source["S3Uri"])
            objects = _listing(store, prefix)
            sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
            cache = self.run_dir / "channels" / name
            for i, obj in enumerate(objects):
                rel = _relative(obj.key, prefix)
                if not rel:
                    continue
                targets = [instances[i % n]] if sharded else instances
                local = local_path(cache, rel, store.uri(obj.key))
                store.get_file(obj.key, local)
                for inst in targets:
                    dest = inst.base / "input" / "data" / name / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(local, dest)
                    except OSError:
                        shutil.copyfile(local, dest)
            for inst in instances:
                (inst.base / "input" / "data" / name).mkdir(parents=True, exist_ok=True)

    def _restore_state(self, instances: list[_Instance]) -> None:
        checkpoint = self.spec.get("CheckpointConfig")
        if not checkpoint:
            return
        store, prefix = store_for_uri(checkpoint["S3Uri"])
        if not prefix.endswith("/"):
            prefix += "/"
        for obj in _listing(store, prefix):
            rel = obj.key[len(prefix) :]
            first = local_path(instances[0].base / "state", rel, store.uri(obj.key))
            store.get_file(obj.key, first)
            self._restored_state[rel] = sha256_path(first)
            for inst in instances[1:]:
                dest = inst.base / "state" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(first, dest)
        _write_json(self.run_dir / RESTORED_FILE, self._restored_state)

    def _environment(
        self,
        inst: _Instance,
        hosts: list[str],
        *,
        base: PurePath | None = None,
        state: PurePath | None = None,
        inherit: bool = True,
    ) -> dict[str, str]:
        """The instance's variables; `base`/`state` are where its directories appear to
        the job (inside a container: /opt/ml and /state), `inherit` adds ours."""
        hps = user_hyperparameters(self.spec)
        channels = [c["ChannelName"] for c in self.spec.get("InputDataConfig", [])]
        base = inst.base if base is None else base
        state = base / "state" if state is None else state
        channel_dirs = {c: str(base / "input" / "data" / c) for c in channels}
        user_args: list[str] = []
        for key, value in hps.items():
            user_args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
        training_env = {
            "job_name": self.job_name,
            "hosts": hosts,
            "current_host": inst.host,
            "hyperparameters": hps,
            "channel_input_dirs": channel_dirs,
            "model_dir": str(base / "model"),
            "output_data_dir": str(base / "output" / "data"),
            "output_dir": str(base / "output"),
            "input_dir": str(base / "input"),
            "input_config_dir": str(base / "input" / "config"),
            "module_dir": str(base / "code"),
            "user_entry_point": sagemaker_param(self.spec, "sagemaker_program"),
            "num_cpus": os.cpu_count() or 1,
            "num_gpus": 0,
        }
        env = dict(os.environ) if inherit else {}
        env.update(self.spec.get("Environment", {}))
        env.update(
            {
                "SM_HOSTS": json.dumps(hosts),
                "SM_CURRENT_HOST": inst.host,
                "SM_HPS": json.dumps(hps),
                "SM_CHANNELS": json.dumps(channels),
                "SM_MODEL_DIR": str(base / "model"),
                "SM_OUTPUT_DATA_DIR": str(base / "output" / "data"),
                "SM_OUTPUT_DIR": str(base / "output"),
                "SM_INPUT_DIR": str(base / "input"),
                "SM_INPUT_CONFIG_DIR": str(base / "input" / "config"),
                "SM_MODULE_DIR": str(base / "code"),
                "SM_NUM_CPUS": str(os.cpu_count() or 1),
                "SM_NUM_GPUS": "0",
                "SM_USER_ARGS": json.dumps(user_args),
                "SM_TRAINING_ENV": json.dumps(training_env),
                "SSM_STATE_DIR": str(state),
                "TRAINING_JOB_NAME": self.job_name,
                "PYTHONUNBUFFERED": "1",
            }
        )
        for key, value in hps.items():
            env[f"SM_HP_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        for name, path in channel_dirs.items():
            env[f"SM_CHANNEL_{name.upper()}"] = path
        return env

    def _write_config(self, inst: _Instance, hosts: list[str]) -> None:
        config = inst.base / "input" / "config"
        hps = {k: v for k, v in self.spec.get("HyperParameters", {}).items()}
        (config / "hyperparameters.json").write_text(json.dumps(hps, indent=2))
        resource = {"current_host": inst.host, "hosts": hosts, "network_interface_name": "lo"}
        (config / "resourceconfig.json").write_text(json.dumps(resource, indent=2))
        data_config = {
            c["ChannelName"]: {
                "TrainingInputMode": "File",
                "S3DistributionType": c["DataSource"]["S3DataSource"]["S3DataDistributionType"],
                "RecordWrapperType": "None",
            }
            for c in self.spec.get("InputDataConfig", [])
        }
        (config / "inputdataconfig.json").write_text(json.dumps(data_config, indent=2))

    # -- running -------------------------------------------------------------

    def _read_output(self, inst: _Instance, log_file: Path) -> None:
        assert inst.process is not None and inst.process.stdout is not None
        with log_file.open("ab") as log:
            for raw in iter(inst.process.stdout.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip("\r\n")
                inst.tail.append(line)
                self.on_log(inst.host, line)

    def _log(self, inst: _Instance, log_file: Path, line: str) -> None:
        with log_file.open("a") as log:
            log.write(line + "\n")
        inst.tail.append(line)
        self.on_log(inst.host, line)

    def _signal_all(self, sig: int) -> None:
        for inst in self._instances:
            if inst.process is not None and inst.process.poll() is None:
                if not isinstance(inst.process, subprocess.Popen):
                    inst.process.send_signal(sig)
                    continue
                try:
                    os.killpg(inst.process.pid, sig)
                except ProcessLookupError:
                    pass

    def run(self) -> JobResult:
        """Run the job to its end and upload its outputs and state; never raises for a
        failure of the user's code (that is a Failed result)."""
        try:
            instances, _code = self._prepare()
        except Exception:
            if self._stop.is_set():
                return JobResult("Stopped", self._stop_reason)
            raise
        self._instances = instances
        hosts = [i.host for i in instances]
        logs_dir = self.run_dir / "logs"
        logs_dir.mkdir(exist_ok=True)
        entry = sagemaker_param(self.spec, "sagemaker_program")
        args: list[str] = []
        for key, value in user_hyperparameters(self.spec).items():
            args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
        for inst in instances:
            self._write_config(inst, hosts)
            log_file = logs_dir / f"{inst.host}.log"
            if self.docker_image is not None:
                if self._stop.is_set():
                    break
                self._start_container(inst, hosts, log_file, entry, args)
                continue
            python = python_for_requirements(
                inst.base / "code" / "requirements.txt",
                self.venv_cache,
                base_python=self.python,
                on_log=functools.partial(self._log, inst, log_file),
            )
            cmd = [python, entry, *args]
            self._log(inst, log_file, "Invoking script with the following command:")
            self._log(inst, log_file, "")
            self._log(inst, log_file, " ".join([python, entry, *args]))
            self._log(inst, log_file, "")
            if self._stop.is_set():
                break
            inst.process = subprocess.Popen(
                cmd,
                cwd=inst.base / "code",
                env=self._environment(inst, hosts),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            inst.reader = threading.Thread(
                target=self._read_output, args=(inst, log_file), daemon=True
            )
            inst.reader.start()
        result = self._wait(instances)
        self._upload(instances, result)
        return result

    def _start_container(
        self, inst: _Instance, hosts: list[str], log_file: Path, entry: str, args: list[str]
    ) -> None:
        from ssmake.backends.local.containers import (
            CONTAINER_BASE,
            CONTAINER_STATE,
            ContainerProcess,
            container_command,
            mounts,
        )

        assert self.docker_image is not None
        cmd = container_command(inst.base / "code", entry, args)
        self._log(inst, log_file, f"Running in image {self.docker_image}:")
        self._log(inst, log_file, "")
        self._log(inst, log_file, " ".join(cmd))
        self._log(inst, log_file, "")
        env = self._environment(
            inst, hosts, base=CONTAINER_BASE, state=CONTAINER_STATE, inherit=False
        )
        inst.process = ContainerProcess(
            self.docker_image,
            cmd,
            environment=env,
            volumes=mounts(inst.base, inst.base / "state"),
            name=f"ssmake-{self.job_name}-{inst.host}",
        )
        inst.reader = threading.Thread(target=self._read_output, args=(inst, log_file), daemon=True)
        inst.reader.start()

    def _wait(self, instances: list[_Instance]) -> JobResult:
        max_run = float(self.spec["StoppingCondition"]["MaxRuntimeInSeconds"])
        deadline = time.monotonic() + max_run
        term_sent_at: float | None = None
        while True:
            running = [i for i in instances if i.process is not None and i.process.poll() is None]
            failed = [
                i for i in instances if i.process is not None and i.process.poll() not in (0, None)
            ]
            if not running:
                break
            if failed and term_sent_at is None:
                # One failed instance fails the job, as on SageMaker: stop the others.
                self._signal_all(signal.SIGTERM)
                term_sent_at = time.monotonic()
            if term_sent_at is None and time.monotonic() > deadline:
                self.stop("MaxRuntimeExceeded: the job ran longer than max_run_mins")
            if self._stop.is_set() and term_sent_at is None:
                self._signal_all(signal.SIGTERM)
                term_sent_at = time.monotonic()
            if term_sent_at is not None and time.monotonic() - term_sent_at > self.grace_seconds:
                self._signal_all(signal.SIGKILL)
            time.sleep(0.05)
        for inst in instances:
            if inst.reader is not None:
                inst.reader.join(timeout=5)
        hosts = [i.host for i in instances]
        if self._stop.is_set() or any(i.process is None for i in instances):
            return JobResult("Stopped", self._stop_reason or "stopped", hosts=hosts)
        for inst in instances:
            assert inst.process is not None
            code = inst.process.returncode
            assert code is not None  # the loop above waited for every instance
            if code != 0:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                reason = f"AlgorithmError: {inst.host} failed with {how}"
                return JobResult("Failed", reason, list(inst.tail), hosts)
        return JobResult("Completed", hosts=hosts)

    def _upload(self, instances: list[_Instance], result: JobResult) -> None:
        output_uri = self.spec["OutputDataConfig"]["S3OutputPath"].rstrip("/") + "/"
        store, prefix = store_for_uri(output_uri)
        job_prefix = f"{prefix}{self.job_name}/"
        for log in sorted((self.run_dir / "logs").glob("*.log")):
            store.put_file(f"{job_prefix}logs/{log.name}", log)
        # State is uploaded whatever the outcome: it is what a rerun resumes from.
        checkpoint = self.spec.get("CheckpointConfig")
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
                        if self._restored_state.get(rel) != sha256_path(path):
                            changed[rel] = path
            for rel, path in changed.items():
                state_store.put_file(state_prefix + rel, path)
        if result.status != "Completed":
            return
        model = self.run_dir / "model.tar.gz"
        pack_dirs(model, [i.base / "model" for i in instances])
        store.put_file(f"{job_prefix}output/model.tar.gz", model)
        output = self.run_dir / "output.tar.gz"
        pack_dirs(output, [instances[0].base / "output" / "data"])
        store.put_file(f"{job_prefix}output/output.tar.gz", output)


def stop_grace_seconds(grace_seconds: float | None = None) -> float:
    """The time between SIGTERM and SIGKILL: the argument, else
    SSMAKE_STOP_GRACE_SECONDS, else SageMaker's 120 s."""
    if grace_seconds is not None:
        return grace_seconds
    env_grace = os.environ.get("SSMAKE_STOP_GRACE_SECONDS")
    return float(env_grace) if env_grace else DEFAULT_GRACE_SECONDS


def recover_abandoned(run_dir: Path, *, grace_seconds: float | None = None) -> str:
    """Clean up after a job whose ssmake process died (SIGKILL, a crash, a reboot).

    Its instances may still run, orphaned: they are stopped like a stopped job
    (SIGTERM, SIGKILL after the grace period). Then the state they wrote and their
    logs are uploaded, as a job's ending would have; there is no model or output.
    Returns what was done, for the user.
    """
    try:
        spec: JobSpec = json.loads((run_dir / JOB_FILE).read_text())
    except (OSError, ValueError):
        return "it left nothing to clean up"
    job = str(spec.get("TrainingJobName", ""))
    groups = job_process_groups(run_dir, job)
    stopped = len(groups)
    if groups:
        deadline = time.monotonic() + stop_grace_seconds(grace_seconds)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pgid in groups:
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    pass
            while groups and time.monotonic() < deadline:
                time.sleep(0.05)
                groups = job_process_groups(run_dir, job)
            deadline = time.monotonic() + 10
        if groups:
            raise BackendError(
                f"cannot stop the orphaned processes of job {job} (process groups "
                f"{', '.join(map(str, sorted(groups)))}); stop them and run ssmake again"
            )
    executor = LocalExecutor(spec, run_dir, venv_cache=run_dir, on_log=lambda h, line: None)
    try:
        executor._restored_state = json.loads((run_dir / RESTORED_FILE).read_text())
    except (OSError, ValueError):
        pass  # died while restoring: what is there came from the store, uploading is harmless
    (run_dir / "logs").mkdir(exist_ok=True)
    instances = [_Instance(p.name, p) for p in sorted(run_dir.glob("algo-*")) if p.is_dir()]
    executor._upload(instances, JobResult("Stopped", "its ssmake process died"))
    orphans = f"stopped {stopped} orphaned worker process group(s)" if stopped else "no worker ran"
    return f"{orphans}; kept the state it wrote"


def job_process_groups(run_dir: Path, job: str) -> set[int]:
    """The process groups of the live processes that are instances of `job` run from
    `run_dir`, as their environment says: only those are ours to signal. Each
    instance leads its own group, which also holds what it started.

    The environment identifies them rather than a recorded pid: a pid may be reused,
    and a worker started just before its ssmake died may not be recorded yet.
    Empty where /proc is not there to tell (then nothing is signalled).
    """
    marks = (f"TRAINING_JOB_NAME={job}".encode(), f"SSM_STATE_DIR={run_dir}/".encode())
    found: set[int] = set()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] == b"Z":
                continue  # a zombie runs nothing
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except (OSError, IndexError):
            continue  # gone, or another user's: not ours
        if marks[0] in env and any(v.startswith(marks[1]) for v in env):
            found.add(int(fields[2]))
    found.discard(os.getpgrp())  # never our own group, whatever its environment says
    return found


def _write_json(path: Path, doc: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


JOB_FILE = "job.json"
RESTORED_FILE = "restored-state.json"
_RECOVERY_KEYS = (
    "TrainingJobName",
    "OutputDataConfig",
    "CheckpointConfig",
    "ResourceConfig",
    "StoppingCondition",
)


def describe_local_failure(result: JobResult) -> str:
    tail = "\n".join(f"  | {line}" for line in result.log_tail)
    return f"{result.failure_reason}\n{tail}" if tail else result.failure_reason
