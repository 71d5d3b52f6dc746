"""RecordingBuilder: a complete fake docker for tests and benchmarks.

It holds images, records every build, tag, pull, login and push, and fails the
way `DockerBuilder` does (same messages) when asked to, so what a test asserts
on (skip decisions, rendered Dockerfiles, tags) comes from ssmake's real logic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ssmake.errors import ImageError
from ssmake.images.builder import BuildRequest, OutputFn, split_ref
from ssmake.images.docker import build_failed, pull_failed, push_failed
from ssmake.images.registries import Login
from ssmake.plan.hashcache import sha256_path


@dataclass
class RecordingBuilder:
    """A fake docker: the images it holds, and everything asked of it, in order.

    `images` and `remote` map references to image ids (what a tag points at) on
    this machine and in the registries; a push copies one to the other, a pull
    back. `on_push(ref, image_id)` lets a test make a push visible in a registry
    that ssmake reads (such as moto's ECR). `fail_build` names a Dockerfile
    instruction that fails as a failing RUN step does; `deny_push` refuses pushes.
    """

    images: dict[str, str] = field(default_factory=dict)
    remote: dict[str, str] = field(default_factory=dict)
    builds: list[BuildRequest] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)
    pushes: list[str] = field(default_factory=list)
    pulls: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    on_push: Callable[[str, str], None] | None = None
    fail_build: str | None = None
    deny_push: bool = False

    def has_image(self, ref: str) -> bool:
        return ref in self.images

    def build(self, request: BuildRequest, on_output: OutputFn) -> None:
        self.builds.append(request)
        tag = request.tags[0]
        steps = [
            line.strip()
            for line in request.dockerfile.splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        for n, step in enumerate(steps, 1):
            header = f"Step {n}/{len(steps)} : {step}"
            on_output(header)
            instruction, _, argument = step.partition(" ")
            if instruction.upper() == "FROM" and argument not in self.images:
                if argument not in self.remote:
                    denied = f"pull access denied for {argument}, repository does not exist"
                    raise build_failed(tag, header, denied, [])
                self.pulls.append(argument)
                self.images[argument] = self.remote[argument]
            if self.fail_build is not None and self.fail_build in step:
                output = f"{argument}: failing as asked"
                on_output(output)
                error = f"The command '/bin/sh -c {argument}' returned a non-zero code: 1"
                raise build_failed(tag, header, error, [output])
        content = hashlib.sha256(request.dockerfile.encode())
        for name, path in request.files:
            content.update(f"\0{name}\0{sha256_path(path)}".encode())
        image_id = content.hexdigest()
        on_output(f"Successfully built {image_id[:12]}")
        for ref in request.tags:
            self.images[ref] = image_id
            on_output(f"Successfully tagged {ref}")

    def tag(self, source: str, target: str) -> None:
        if source not in self.images:
            raise ImageError(f"cannot tag {source} as {target}: No such image: {source}")
        self.tags.append((source, target))
        self.images[target] = self.images[source]

    def login(self, login: Login) -> None:
        self.logins.append(login.registry)

    def push(self, ref: str, on_output: OutputFn) -> None:
        if ref not in self.images:
            raise push_failed(ref, f"An image does not exist locally with the tag: {ref}")
        if self.deny_push:
            raise push_failed(ref, "denied: not authorized to perform: ecr:InitiateLayerUpload")
        self.pushes.append(ref)
        self.remote[ref] = self.images[ref]
        on_output(f"{split_ref(ref)[1]}: digest: sha256:{self.images[ref]}")
        if self.on_push is not None:
            self.on_push(ref, self.images[ref])

    def pull(self, ref: str, on_output: OutputFn) -> None:
        if ref not in self.remote:
            raise pull_failed(ref, f"manifest for {ref} not found: manifest unknown")
        self.pulls.append(ref)
        self.images[ref] = self.remote[ref]
        on_output(f"Status: Downloaded newer image for {ref}")
