"""What ssmake asks of docker: one build request and the builder protocol.

Both the docker SDK builder (`images.docker`) and the resolver (`images.resolve`)
import these; neither imports the other's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ssmake.images.registries import Login

OutputFn = Callable[[str], None]


@dataclass(frozen=True)
class BuildRequest:
    """One `docker build`: the rendered Dockerfile, the context's files, the tags."""

    dockerfile: str
    files: tuple[tuple[str, str], ...]  # (context-relative name, path on disk)
    tags: tuple[str, ...]


class ImageBuilder(Protocol):
    """What ssmake asks of docker."""

    def has_image(self, ref: str) -> bool: ...

    def build(self, request: BuildRequest, on_output: OutputFn) -> None: ...

    def tag(self, source: str, target: str) -> None: ...

    def login(self, login: Login) -> None: ...

    def push(self, ref: str, on_output: OutputFn) -> None: ...

    def pull(self, ref: str, on_output: OutputFn) -> None: ...


def split_ref(ref: str) -> tuple[str, str]:
    """(repository, tag) of `repo[:tag]`, where repo may hold a `host:port`."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, "latest"
