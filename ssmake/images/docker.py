"""The ImageBuilder that talks to docker, through its SDK.

`DockerBuilder` sends the daemon a context that ssmake assembles itself (the
files `image_context.context_files` lists and the rendered Dockerfile), so what
is built is exactly what the content tag names. Its errors say which step
failed, with that step's output; `recording_builder.RecordingBuilder` fails
with the same messages.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ssmake.errors import EXIT_USAGE, ImageError
from ssmake.images.builder import BuildRequest, OutputFn, split_ref
from ssmake.images.registries import Login
from ssmake.plan.docker_context import DOCKERFILE

TAIL_LINES = 30


def _tail(lines: Iterable[str]) -> str:
    kept = [line for line in lines if line.strip()][-TAIL_LINES:]
    return "".join(f"\n  | {line}" for line in kept)


def build_failed(tag: str, step: str, error: str, output: Iterable[str]) -> ImageError:
    where = f" at {step.strip()}" if step else ""
    return ImageError(f"docker build of {tag} failed{where}: {error.strip()}{_tail(output)}")


def push_failed(ref: str, error: str) -> ImageError:
    return ImageError(
        f"docker push of {ref} failed: {error.strip()}; check that you are allowed to push "
        "there (on ECR: ecr:InitiateLayerUpload, ecr:UploadLayerPart, "
        "ecr:CompleteLayerUpload, ecr:PutImage) and that image.repo names the right repository"
    )


def pull_failed(ref: str, error: str) -> ImageError:
    return ImageError(
        f"cannot pull image {ref}: {error.strip()}; check the image name (image.uri, "
        "framework_version, python_version) and that you may read that repository"
    )


def daemon_unreachable(error: object) -> ImageError:
    return ImageError(
        f"cannot reach the docker daemon ({error}); start it (`sudo systemctl start docker`, "
        "or Docker Desktop) or point DOCKER_HOST at one. Only images that are built or run "
        "locally need docker: without local_docker, the local backend runs none.",
        EXIT_USAGE,
    )


class _Lines:
    """Splits a stream of text chunks into lines, remembering the current build step."""

    def __init__(self, on_output: OutputFn) -> None:
        self.on_output = on_output
        self.partial = ""
        self.step = ""
        self.step_output: list[str] = []

    def feed(self, text: str) -> None:
        self.partial += text
        *lines, self.partial = self.partial.split("\n")
        for line in lines:
            self.line(line.rstrip("\r"))

    def line(self, line: str) -> None:
        if line.startswith("Step ") and " : " in line:
            self.step, self.step_output = line, []
        else:
            self.step_output.append(line)
        self.on_output(line)

    def flush(self) -> None:
        if self.partial:
            self.line(self.partial)
            self.partial = ""


# Per-layer progress: one line per layer and state would drown the build's output.
_QUIET_STATUS = {
    "Preparing",
    "Waiting",
    "Pushing",
    "Downloading",
    "Extracting",
    "Verifying Checksum",
}


def _status_line(chunk: Mapping[str, Any]) -> str | None:
    status = str(chunk.get("status", ""))
    if not status or status in _QUIET_STATUS:
        return None
    layer = chunk.get("id")
    return f"{layer}: {status}" if layer else status


class DockerBuilder:
    """Builds, tags, pulls and pushes with the docker SDK (`docker.from_env()`)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import docker

                try:
                    self._client = docker.from_env()
                    self._client.ping()
                except docker.errors.DockerException as e:
                    raise daemon_unreachable(e) from None
            return self._client

    def _api(self, what: str, call: Callable[[], Any]) -> Any:
        import docker

        try:
            return call()
        except docker.errors.APIError as e:
            raise ImageError(f"{what}: {e.explanation or e}") from e
        except docker.errors.DockerException as e:
            raise daemon_unreachable(e) from e

    def has_image(self, ref: str) -> bool:
        import docker

        try:
            self._api(f"cannot inspect image {ref}", lambda: self.client.api.inspect_image(ref))
        except ImageError as e:
            if isinstance(e.__cause__, docker.errors.NotFound):
                return False
            raise
        return True

    def build(self, request: BuildRequest, on_output: OutputFn) -> None:
        tag = request.tags[0]
        lines = _Lines(on_output)
        with tempfile.TemporaryFile() as context:
            _write_context(context, request)
            context.seek(0)
            chunks = self._api(
                f"docker build of {tag} was refused",
                lambda: self.client.api.build(
                    fileobj=context,
                    custom_context=True,
                    dockerfile=DOCKERFILE,
                    tag=tag,
                    rm=True,
                    forcerm=True,
                    decode=True,
                ),
            )
            for chunk in self._stream(f"docker build of {tag}", chunks):
                if "stream" in chunk:
                    lines.feed(str(chunk["stream"]))
                elif "error" in chunk:
                    lines.flush()
                    raise build_failed(tag, lines.step, str(chunk["error"]), lines.step_output)
                elif (line := _status_line(chunk)) is not None:
                    lines.line(line)
            lines.flush()
        for extra in request.tags[1:]:
            self.tag(tag, extra)

    def _stream(self, what: str, chunks: Iterable[Any]) -> Iterable[Mapping[str, Any]]:
        import docker

        try:
            yield from chunks
        except docker.errors.DockerException as e:
            raise ImageError(f"{what} broke off: {e}") from e

    def tag(self, source: str, target: str) -> None:
        repo, tag = split_ref(target)
        self._api(
            f"cannot tag {source} as {target}",
            lambda: self.client.api.tag(source, repo, tag, force=True),
        )

    def login(self, login: Login) -> None:
        self._api(
            f"docker login to {login.registry} failed",
            lambda: self.client.login(
                username=login.username,
                password=login.password,
                registry=login.registry,
                reauth=True,
            ),
        )

    def push(self, ref: str, on_output: OutputFn) -> None:
        repo, tag = split_ref(ref)
        chunks = self._api(
            f"docker push of {ref} was refused",
            lambda: self.client.api.push(repo, tag=tag, stream=True, decode=True),
        )
        for chunk in self._stream(f"docker push of {ref}", chunks):
            if "error" in chunk:
                raise push_failed(ref, str(chunk["error"]))
            if (line := _status_line(chunk)) is not None:
                on_output(line)

    def pull(self, ref: str, on_output: OutputFn) -> None:
        repo, tag = split_ref(ref)
        try:
            chunks = self._api(
                f"cannot pull image {ref}",
                lambda: self.client.api.pull(repo, tag=tag, stream=True, decode=True),
            )
        except ImageError as e:
            raise pull_failed(ref, str(e).split(": ", 1)[-1]) from e
        for chunk in self._stream(f"docker pull of {ref}", chunks):
            if "error" in chunk:
                raise pull_failed(ref, str(chunk["error"]))
            if (line := _status_line(chunk)) is not None:
                on_output(line)


def _write_context(target: Any, request: BuildRequest) -> None:
    """The build context as a tar: the listed files (links followed), and the rendered
    Dockerfile in the original's place."""
    with tarfile.open(fileobj=target, mode="w") as tar:
        for name, path in request.files:
            if name == DOCKERFILE:
                continue
            with open(path, "rb") as f:
                info = tar.gettarinfo(arcname=name, fileobj=f)  # fstat: links followed
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, f)
        data = request.dockerfile.encode()
        info = tarfile.TarInfo(DOCKERFILE)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
