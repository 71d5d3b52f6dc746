"""Runs a JobSpec on this machine, under the same contract as SageMaker's containers.

The executor sets up the job's instances (`instances`), starts the entry point
in each one, as a process or in the job's image, and follows them to their end
(`supervise`), then leaves the job's results in the store (`collect`).
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ssmake.backends import JobResult, LogFn, ProgressFn
from ssmake.backends.local.collect import KEEP_RUN_DIRS, upload_results
from ssmake.backends.local.entry_command import (
    Torchrun,
    entry_command,
    entry_kind,
    package_install,
    processes_per_host,
)
from ssmake.backends.local.gpus import gpu_shares, visible_gpus
from ssmake.backends.local.instance_config import (
    MASTER_ADDR,
    environment,
    read_config,
    user_args,
    write_config,
)
from ssmake.backends.local.instances import Instance, prepare_instances
from ssmake.backends.local.supervise import Supervisor, stop_grace_seconds
from ssmake.backends.local.training_env import split_hyperparameters
from ssmake.backends.local.venvs import python_for_requirements
from ssmake.errors import TaskFailed
from ssmake.plan.jobspec import JobSpec, sagemaker_param


class LocalExecutor:
    """Executes one JobSpec; `stop()` may be called from another thread."""

    def __init__(
        self,
        spec: JobSpec,
        run_dir: Path,
        *,
        venv_cache: Path,
        on_log: LogFn,
        on_progress: ProgressFn | None = None,
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
        self.on_progress = on_progress
        self.grace_seconds = stop_grace_seconds(grace_seconds)
        self.python = python
        self._supervisor = Supervisor(
            self.job_name, on_log=on_log, grace_seconds=self.grace_seconds
        )

    @property
    def job_name(self) -> str:
        return str(self.spec["TrainingJobName"])

    def stop(self, reason: str = "stopped by the user") -> None:
        """Ask the job to stop: SIGTERM to every instance, SIGKILL after the grace period."""
        self._supervisor.stop(reason)

    def kill(self) -> None:
        """Stop the job at once: SIGKILL to every instance."""
        self._supervisor.kill()

    def run(self) -> JobResult:
        """Run the job to its end and upload its outputs and state; never raises for a
        failure of the user's code (that is a Failed result)."""
        supervisor = self._supervisor
        try:
            instances, restored_state = prepare_instances(self.spec, self.run_dir, self.on_progress)
        except Exception:
            if supervisor.stopping.is_set():
                return JobResult("Stopped", supervisor.reason)
            raise
        supervisor.instances = instances
        hosts = [i.host for i in instances]
        logs_dir = self.run_dir / "logs"
        logs_dir.mkdir(exist_ok=True)
        entry = sagemaker_param(self.spec, "sagemaker_program")
        shares = gpu_shares(visible_gpus(), len(instances))
        # One port per job, so that local jobs running side by side do not meet.
        master_port = _free_port()
        for inst, gpus in zip(instances, shares, strict=True):
            log_file = logs_dir / f"{inst.host}.log"
            if self.docker_image is not None:
                if supervisor.stopping.is_set():
                    break
                self._start_container(inst, hosts, log_file, gpus=gpus, master_port=master_port)
                continue
            write_config(self.spec, inst, hosts)
            log = functools.partial(supervisor.log, inst, log_file)
            python = python_for_requirements(
                inst.base / "code" / "requirements.txt",
                self.venv_cache,
                base_python=self.python,
                on_log=log,
            )
            env = environment(self.spec, inst, gpus=gpus, master_port=master_port)
            code_dir = inst.base / "code"
            if entry_kind(code_dir, entry) == "package":
                env["PYTHONPATH"] = os.pathsep.join(
                    (self._install_package(python, inst, log), env["PYTHONPATH"])
                )
            torchrun = self._torchrun(inst, hosts, len(gpus), master_port)
            cmd = entry_command(python, code_dir, entry, user_args(inst), torchrun)
            self._announce(inst, log_file, "Invoking script with the following command:", cmd)
            if supervisor.stopping.is_set():
                break
            supervisor.start_process(inst, cmd, log_file, env=env)
        max_run = float(self.spec["StoppingCondition"]["MaxRuntimeInSeconds"])
        result = supervisor.wait(max_run)
        upload_results(self.spec, self.run_dir, instances, result, restored_state)
        # Its outputs, state and logs are in the store: the run directory (a copy of
        # every input) is only disk used, unless kept to look into.
        if not os.environ.get(KEEP_RUN_DIRS):
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return result

    def _torchrun(
        self, inst: Instance, hosts: list[str], num_gpus: int, master_port: int
    ) -> Torchrun | None:
        """Where the instance stands under torchrun, when the job is torch_distributed."""
        _, sagemaker = split_hyperparameters(read_config(inst)[0])
        if not sagemaker.get("sagemaker_torch_distributed_enabled"):
            return None
        return Torchrun(
            nodes=len(hosts),
            node_rank=hosts.index(inst.host),
            procs_per_node=processes_per_host(sagemaker, num_gpus),
            master_addr=MASTER_ADDR,
            master_port=master_port,
        )

    def _install_package(self, python: str, inst: Instance, log: Callable[[str], None]) -> str:
        """Install the code, a package with a setup.py, as the toolkit does before running
        it; into a directory of the instance's own, which is returned."""
        target = self.run_dir / f"{inst.host}-packages"
        cmd = package_install(python, target)
        log("Installing the source directory, which has a setup.py: " + " ".join(cmd))
        proc = subprocess.run(cmd, cwd=inst.base / "code", capture_output=True, text=True)
        output = (proc.stdout + proc.stderr).splitlines()[-20:]
        for line in output:
            log(line)
        if proc.returncode != 0:
            raise TaskFailed(
                "installing the source directory (it has a setup.py) failed:\n" + "\n".join(output)
            )
        return str(target)

    def _start_container(
        self,
        inst: Instance,
        hosts: list[str],
        log_file: Path,
        *,
        gpus: list[str],
        master_port: int,
    ) -> None:
        from ssmake.backends.local.containers import (
            CONTAINER_BASE,
            CONTAINER_STATE,
            container_command,
        )

        assert self.docker_image is not None
        write_config(self.spec, inst, hosts, code_dir=CONTAINER_BASE / "code")
        entry = sagemaker_param(self.spec, "sagemaker_program")
        cmd = container_command(inst.base / "code", entry, user_args(inst))
        self._announce(inst, log_file, f"Running in image {self.docker_image}:", cmd)
        env = environment(
            self.spec,
            inst,
            gpus=gpus,
            master_port=master_port,
            base=CONTAINER_BASE,
            state=CONTAINER_STATE,
            inherit=False,
        )
        self._supervisor.start_container(
            inst, self.docker_image, cmd, log_file, env=env, hosts=hosts
        )

    def _announce(self, inst: Instance, log_file: Path, heading: str, cmd: list[str]) -> None:
        for line in (heading, "", " ".join(cmd), ""):
            self._supervisor.log(inst, log_file, line)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((MASTER_ADDR, 0))
        return int(s.getsockname()[1])
