"""Supervising a local job's processes, as SageMaker supervises its containers.

Each instance runs in its own process group (or container), its output logged
line by line. One failed instance fails the job: the others get SIGTERM, as
does every instance when the job is stopped or outlives max_run, and SIGKILL
follows after the grace period. `recover_abandoned` does the same for the
processes of a job whose ssmake died, found by their environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from ssmake.backends import JobResult, LogFn
from ssmake.backends.local.collect import upload_results
from ssmake.backends.local.instances import JOB_FILE, RESTORED_FILE, Instance
from ssmake.errors import BackendError
from ssmake.plan.jobspec import JobSpec

DEFAULT_GRACE_SECONDS = 120.0
#: Written into a job's run directory by `ssmake cancel` before it signals the job's
#: instances, so that the ssmake following the job reports it cancelled, not failed.
CANCELLED_FILE = "cancelled"


def stop_grace_seconds(grace_seconds: float | None = None) -> float:
    """The time between SIGTERM and SIGKILL: the argument, else
    SSMAKE_STOP_GRACE_SECONDS, else SageMaker's 120 s."""
    if grace_seconds is not None:
        return grace_seconds
    env_grace = os.environ.get("SSMAKE_STOP_GRACE_SECONDS")
    return float(env_grace) if env_grace else DEFAULT_GRACE_SECONDS


class Supervisor:
    """Starts the instances of one job and follows them to their end; `stop()` may be
    called from another thread."""

    def __init__(self, job: str, *, on_log: LogFn, grace_seconds: float) -> None:
        self.job = job
        self.on_log = on_log
        self.grace_seconds = grace_seconds
        #: The instances to signal when stopping, once they are set up.
        self.instances: list[Instance] = []
        self.stopping = threading.Event()
        self.killing = threading.Event()
        self.reason = ""
        self._lock = threading.Lock()
        #: Set whenever an instance ends or the job is asked to stop, so that `wait`
        #: answers at once rather than at its next look.
        self._changed = threading.Event()
        #: When the first instance started (`boot_ticks`), for finding what it left.
        self.started_after: int | None = None

    def stop(self, reason: str) -> None:
        """Ask the job to stop: SIGTERM to every instance, SIGKILL after the grace period."""
        with self._lock:
            if not self.reason:
                self.reason = reason
            self.stopping.set()
        self._changed.set()

    def kill(self) -> None:
        """Stop the job at once: SIGKILL to every instance (a second Ctrl-C)."""
        self.killing.set()
        self.stop("killed")

    def log(self, inst: Instance, log_file: Path, line: str) -> None:
        """A line of ssmake's own in the instance's log, as if the instance wrote it."""
        with log_file.open("a") as log:
            log.write(line + "\n")
        inst.tail.append(line)
        self.on_log(inst.host, line)

    def start_process(
        self, inst: Instance, cmd: list[str], log_file: Path, *, env: dict[str, str]
    ) -> None:
        """Run `cmd` in the instance's code directory, leading a process group of its own."""
        self._note_start()
        inst.process = subprocess.Popen(
            cmd,
            cwd=inst.base / "code",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._follow(inst, log_file)

    def start_container(
        self,
        inst: Instance,
        image: str,
        cmd: list[str],
        log_file: Path,
        *,
        env: dict[str, str],
        hosts: list[str],
    ) -> None:
        """Run `cmd` in `image`, the instance's directories mounted where SageMaker's are."""
        from ssmake.backends.local.containers import ContainerProcess, mounts

        self._note_start()
        inst.process = ContainerProcess(
            image,
            cmd,
            environment=env,
            volumes=mounts(inst.base, inst.base / "state"),
            name=container_name(self.job, inst),
            hosts=hosts,
        )
        self._follow(inst, log_file)

    def _note_start(self) -> None:
        if self.started_after is None:
            self.started_after = boot_ticks()

    def _follow(self, inst: Instance, log_file: Path) -> None:
        inst.reader = threading.Thread(target=self._read_output, args=(inst, log_file), daemon=True)
        inst.reader.start()

    def _read_output(self, inst: Instance, log_file: Path) -> None:
        """Log the instance's output line by line; at its end (the instance closed its
        output, so it has ended or soon will), wait for it and wake `wait`."""
        assert inst.process is not None and inst.process.stdout is not None
        try:
            with log_file.open("ab") as log:
                for raw in iter(inst.process.stdout.readline, b""):
                    log.write(raw)
                    log.flush()
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    inst.tail.append(line)
                    self.on_log(inst.host, line)
            inst.process.wait()
        finally:
            self._changed.set()

    def _signal_all(self, sig: int) -> None:
        for inst in self.instances:
            if inst.process is not None and inst.process.poll() is None:
                if not isinstance(inst.process, subprocess.Popen):
                    inst.process.send_signal(sig)
                    continue
                try:
                    os.killpg(inst.process.pid, sig)
                except ProcessLookupError:
                    pass

    def wait(self, max_run: float) -> JobResult:
        """Wait for every started instance to end, stopping them all when one fails, when
        asked to, or after `max_run` seconds."""
        instances = self.instances
        deadline = time.monotonic() + max_run
        term_sent_at: float | None = None
        while True:
            self._changed.clear()
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
            if self.stopping.is_set() and term_sent_at is None:
                self._signal_all(signal.SIGTERM)
                term_sent_at = time.monotonic()
            if self.killing.is_set() or (
                term_sent_at is not None and time.monotonic() - term_sent_at > self.grace_seconds
            ):
                self._signal_all(signal.SIGKILL)
            # The deadlines are looked at every 50 ms; an instance's end wakes us at once.
            self._changed.wait(0.05)
        # The job ended: as when SageMaker tears its containers down, nothing it started
        # lives on (and holds its output pipe open, which would keep us reading).
        kill_leftovers(instances, self.started_after)
        for inst in instances:
            if inst.reader is not None:
                inst.reader.join(timeout=5)
        hosts = [i.host for i in instances]
        cancelled = bool(instances) and (instances[0].base.parent / CANCELLED_FILE).exists()
        if cancelled and not self.stopping.is_set():
            return JobResult("Stopped", "cancelled (ssmake cancel)", hosts=hosts)
        if self.stopping.is_set() or any(i.process is None for i in instances):
            return JobResult("Stopped", self.reason or "stopped", hosts=hosts)
        for inst in instances:
            assert inst.process is not None
            code = inst.process.returncode
            assert code is not None  # the loop above waited for every instance
            if code != 0:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                reason = f"AlgorithmError: {inst.host} failed with {how}"
                return JobResult("Failed", reason, list(inst.tail), hosts)
        return JobResult("Completed", hosts=hosts)


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
    restored: dict[str, str] = {}
    try:
        restored = json.loads((run_dir / RESTORED_FILE).read_text())
    except (OSError, ValueError):
        pass  # died while restoring: what is there came from the store, uploading is harmless
    (run_dir / "logs").mkdir(exist_ok=True)
    instances = [Instance(p.name, p) for p in sorted(run_dir.glob("algo-*")) if p.is_dir()]
    upload_results(
        spec, run_dir, instances, JobResult("Stopped", "its ssmake process died"), restored
    )
    orphans = f"stopped {stopped} orphaned worker process group(s)" if stopped else "no worker ran"
    return f"{orphans}; kept the state it wrote"


def kill_leftovers(instances: list[Instance], started_after: int | None = None) -> None:
    """SIGKILL what the ended instances started and left running: the members of
    each instance's process group and session (it leads both), and whatever else
    carries the job's environment (a grandchild that started a session of its own).
    `started_after`: the job's start (`boot_ticks`), when known; older processes
    cannot be the job's."""
    leaders = {
        i.process.pid
        for i in instances
        if isinstance(i.process, subprocess.Popen) and i.process.returncode is not None
    }
    if not leaders:
        return
    run_dir = instances[0].base.parent
    job = ""
    try:
        job = str(json.loads((run_dir / JOB_FILE).read_text()).get("TrainingJobName", ""))
    except (OSError, ValueError):
        pass
    killed = set()
    for pid, group, session, env in _processes(started_after):
        ours = group in leaders or session in leaders
        if not ours and job:
            ours = _names_job(env, run_dir, job)
        if ours and group != os.getpgrp():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
    # SIGKILL takes effect soon, not at once: the job has ended when they are gone.
    deadline = time.monotonic() + 5
    while killed and time.monotonic() < deadline:
        killed &= {pid for pid, *_ in _processes(started_after)}
        time.sleep(0.01)


def _processes(started_after: int | None = None) -> list[tuple[int, int, int, list[bytes]]]:
    """(pid, process group, session, environment) of each live process we can see;
    empty where there is no /proc. With `started_after` (clock ticks since boot), the
    environment is read only of the processes started since, and is empty for the
    others: what a job started cannot be older than the job."""
    found = []
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    for pid in pids:
        stat = _read_proc(f"/proc/{pid}/stat")
        if stat is None:
            continue  # gone meanwhile
        try:
            fields = stat.rsplit(b")", 1)[1].split()
            state, group, session = fields[0], int(fields[2]), int(fields[3])
            start = int(fields[19])
        except (IndexError, ValueError):
            continue
        if state == b"Z":
            continue  # a zombie runs nothing
        env: list[bytes] = []
        if started_after is None or start >= started_after:
            raw = _read_proc(f"/proc/{pid}/environ")
            if raw is None:
                continue  # gone, or another user's: not ours
            env = raw.split(b"\0")
        found.append((pid, group, session, env))
    return found


def _read_proc(path: str) -> bytes | None:
    """A /proc file's bytes, read with plain system calls (a scan reads hundreds)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def boot_ticks() -> int | None:
    """Now, in the clock ticks since boot that /proc/PID/stat gives a process's start
    in, less a second's margin; None where /proc cannot tell."""
    raw = _read_proc("/proc/uptime")
    try:
        uptime = float(raw.split()[0]) if raw else -1.0
    except (IndexError, ValueError):
        uptime = -1.0
    if uptime < 0:
        return None
    return max(0, int((uptime - 1.0) * os.sysconf("SC_CLK_TCK")))


def _names_job(env: list[bytes], run_dir: Path, job: str) -> bool:
    marks = (f"TRAINING_JOB_NAME={job}".encode(), f"SSM_STATE_DIR={run_dir}/".encode())
    return marks[0] in env and any(v.startswith(marks[1]) for v in env)


def job_process_groups(run_dir: Path, job: str) -> set[int]:
    """The process groups of the live processes that are instances of `job` run from
    `run_dir`, as their environment says: only those are ours to signal. Each
    instance leads its own group, which also holds what it started.

    The environment identifies them rather than a recorded pid: a pid may be reused,
    and a worker started just before its ssmake died may not be recorded yet.
    Empty where /proc is not there to tell (then nothing is signalled).
    """
    found = {group for _pid, group, _session, env in _processes() if _names_job(env, run_dir, job)}
    found.discard(os.getpgrp())  # never our own group, whatever its environment says
    return found


def container_name(job: str, inst: Instance) -> str:
    """The container of one instance. A job's name is the same in two clones of one
    project (or two test runs) on this machine, so the name also carries the run
    directory: the stale-container clean-up then only ever removes this run's own."""
    where = hashlib.sha256(str(inst.base.resolve()).encode()).hexdigest()[:8]
    return f"ssmake-{job}-{inst.host}-{where}"
