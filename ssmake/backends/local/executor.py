"""Runs a JobSpec on this machine, under the same contract as SageMaker's containers.

The executor sets up the job's instances (`instances`), starts the entry point
in each one, as a process or in the job's image, and follows them to their end
(`supervise`), then leaves the job's results in the store (`collect`).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from ssmake.backends import JobResult, LogFn
from ssmake.backends.local.collect import upload_results
from ssmake.backends.local.instances import (
    Instance,
    environment,
    prepare_instances,
    user_args,
    write_config,
)
from ssmake.backends.local.supervise import Supervisor, stop_grace_seconds
from ssmake.backends.local.venvs import python_for_requirements
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
        self._supervisor = Supervisor(
            self.job_name, on_log=on_log, grace_seconds=self.grace_seconds
        )

    @property
    def job_name(self) -> str:
        return str(self.spec["TrainingJobName"])

    def stop(self, reason: str = "stopped by the user") -> None:
        """Ask the job to stop: SIGTERM to every instance, SIGKILL after the grace period."""
        self._supervisor.stop(reason)

    def run(self) -> JobResult:
        """Run the job to its end and upload its outputs and state; never raises for a
        failure of the user's code (that is a Failed result)."""
        supervisor = self._supervisor
        try:
            instances, restored_state = prepare_instances(self.spec, self.run_dir)
        except Exception:
            if supervisor.stopping.is_set():
                return JobResult("Stopped", supervisor.reason)
            raise
        supervisor.instances = instances
        hosts = [i.host for i in instances]
        logs_dir = self.run_dir / "logs"
        logs_dir.mkdir(exist_ok=True)
        entry = sagemaker_param(self.spec, "sagemaker_program")
        args = user_args(self.spec)
        for inst in instances:
            write_config(self.spec, inst, hosts)
            log_file = logs_dir / f"{inst.host}.log"
            if self.docker_image is not None:
                if supervisor.stopping.is_set():
                    break
                self._start_container(inst, hosts, log_file, entry, args)
                continue
            python = python_for_requirements(
                inst.base / "code" / "requirements.txt",
                self.venv_cache,
                base_python=self.python,
                on_log=functools.partial(supervisor.log, inst, log_file),
            )
            cmd = [python, entry, *args]
            self._announce(inst, log_file, "Invoking script with the following command:", cmd)
            if supervisor.stopping.is_set():
                break
            env = environment(self.spec, inst, hosts)
            supervisor.start_process(inst, cmd, log_file, env=env)
        max_run = float(self.spec["StoppingCondition"]["MaxRuntimeInSeconds"])
        result = supervisor.wait(max_run)
        upload_results(self.spec, self.run_dir, instances, result, restored_state)
        return result

    def _start_container(
        self, inst: Instance, hosts: list[str], log_file: Path, entry: str, args: list[str]
    ) -> None:
        from ssmake.backends.local.containers import (
            CONTAINER_BASE,
            CONTAINER_STATE,
            container_command,
        )

        assert self.docker_image is not None
        cmd = container_command(inst.base / "code", entry, args)
        self._announce(inst, log_file, f"Running in image {self.docker_image}:", cmd)
        env = environment(
            self.spec, inst, hosts, base=CONTAINER_BASE, state=CONTAINER_STATE, inherit=False
        )
        self._supervisor.start_container(inst, self.docker_image, cmd, log_file, env=env)

    def _announce(self, inst: Instance, log_file: Path, heading: str, cmd: list[str]) -> None:
        for line in (heading, "", " ".join(cmd), ""):
            self._supervisor.log(inst, log_file, line)
