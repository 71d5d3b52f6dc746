"""One instance of a local job run inside its image (`local_docker = true`).

The container is started as SageMaker starts it: the instance's directory
mounted at `/opt/ml` (its config files in `input/config`), the state at
`/state`, every host name (`algo-1` ...) resolving to this machine, and the
image's own `train` as its command: the `sagemaker-training` toolkit of the
framework image builds the environment and runs the entry point itself. An
image without `train` runs the entry point as the toolkit would (requirements
first, then `python -- ENTRY ARGS` in `/opt/ml/code`). `ContainerProcess` gives
the supervisor the little of `subprocess.Popen` it uses (stdout, poll,
returncode, a signal), so logs, failures, max_run and Ctrl-C work as for a
process.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path, PurePosixPath
from typing import Any

from ssmake.backends.local.entry_command import entry_command, entry_kind
from ssmake.errors import ImageError
from ssmake.images.docker import daemon_unreachable

CONTAINER_BASE = PurePosixPath("/opt/ml")
CONTAINER_STATE = PurePosixPath("/state")


def container_command(code_dir: Path, entry: str, args: list[str]) -> list[str]:
    """The image's `train` when it has one, else the entry point as the toolkit runs it."""
    steps = []
    if entry_kind(code_dir, entry) == "package":
        steps.append("python -m pip install -q .")
    elif (code_dir / "requirements.txt").is_file():
        steps.append("python -m pip install -q -r requirements.txt")
    # "$@" passes the command through unquoted.
    steps.append('exec "$@"')
    script = "if command -v train >/dev/null 2>&1; then exec train; fi; " + " && ".join(steps)
    return ["sh", "-c", script, "sh", *entry_command("python", code_dir, entry, args)]


def mounts(base: Path, state: Path) -> dict[str, dict[str, str]]:
    """Host directory -> its place in the container, in the docker SDK's form."""
    return {
        str(base): {"bind": str(CONTAINER_BASE), "mode": "rw"},
        str(state): {"bind": str(CONTAINER_STATE), "mode": "rw"},
    }


class ContainerProcess:
    """A started container, looked at the way the supervisor looks at a process."""

    def __init__(
        self,
        image: str,
        command: list[str],
        *,
        environment: dict[str, str],
        volumes: dict[str, dict[str, str]],
        name: str,
        hosts: list[str],
        client: Any = None,
    ) -> None:
        import docker

        self.returncode: int | None = None
        try:
            self._client = client if client is not None else docker.from_env()
            _remove_stale(self._client, name)
            self._container = self._client.containers.create(
                image,
                command,
                name=name,
                environment=environment,
                volumes=volumes,
                working_dir=str(CONTAINER_BASE / "code"),
                # Like the subprocess path: the job reaches what this machine reaches.
                network_mode="host",
                # The toolkit waits until every host name resolves, as on SageMaker.
                extra_hosts={host: "127.0.0.1" for host in hosts},
                # An init as PID 1 passes SIGTERM on: python as PID 1 would ignore it.
                init=True,
                detach=True,
            )
            self._container.start()
        except docker.errors.ImageNotFound as e:
            raise ImageError(f"image {image} is not on this machine: {e.explanation}") from e
        except docker.errors.APIError as e:
            raise ImageError(f"cannot start a container of {image}: {e.explanation}") from e
        except docker.errors.DockerException as e:
            raise daemon_unreachable(e) from e
        read, write = os.pipe()
        self.stdout = os.fdopen(read, "rb")
        self._sink = os.fdopen(write, "wb")
        self._pump = threading.Thread(target=self._copy_logs, daemon=True)
        self._pump.start()
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    def _copy_logs(self) -> None:
        try:
            for chunk in self._container.logs(stream=True, follow=True):
                self._sink.write(chunk)
                self._sink.flush()
        except Exception:
            pass  # the daemon went away: the exit status says what happened
        finally:
            self._sink.close()

    def _wait(self) -> None:
        try:
            code = int(self._container.wait()["StatusCode"])
        except Exception:
            code = 255
        self._pump.join(timeout=10)
        try:
            self._container.remove(force=True)
        except Exception:
            pass
        self.returncode = code

    def poll(self) -> int | None:
        return self.returncode

    def wait(self) -> int:
        """Block until the container has ended and been removed; its exit status."""
        self._waiter.join()
        return 255 if self.returncode is None else self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            return
        try:
            self._container.kill(signal=int(sig))
        except Exception:
            pass  # it ended meanwhile


def _remove_stale(client: Any, name: str) -> None:
    import docker

    try:
        client.containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass
