"""The image a task's job runs in: resolved, built and pushed only when needed.

- A framework image (framework, framework_version, python_version) comes from
  the `sagemaker` package's lookup (see `frameworks`); `image.uri` names a ready
  image instead.
- A `dockerfile` (or `dockerfile_content` from the Python API) is rendered with
  `__BASE_IMAGE__` replaced by that image (with a dockerfile, `image.uri` is the
  base), built, and tagged with a content tag (`image_context.content_tag`), so
  an unchanged image is never built or pushed again. `image.local_repo` names the
  local repository (default: the name in `image.repo`, else
  `ssmake/<project>/<task>`); `image.tag` adds a human tag beside the content tag.
- On the sagemaker backend the image is pushed to `image.repo` (default: the
  local repository's name, as an ECR repository) only when the registry lacks its
  content tag, and the job runs the pushed URI. The local backend pushes only
  when `image.repo` is set.
- On the local backend an image matters only with `local_docker = true`; without
  it the job runs on the local interpreter and its image is a `local/…` label,
  which is how the local backend tells the two apart.

Docker and the registries come in through `ImageBuilder` and `Registry`; tests
pass `recording_builder.RecordingBuilder`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ssmake.errors import ConfigError
from ssmake.events import LogLine, Notice, Reporter
from ssmake.images.builder import BuildRequest, ImageBuilder, OutputFn, split_ref
from ssmake.images.frameworks import FrameworkCatalog, FrameworkImages, SageMakerCatalog
from ssmake.images.registries import Login, base_login, registry_for, split_repository
from ssmake.plan.docker_context import (
    DOCKERFILE,
    content_tag,
    context_files,
    digest_files,
    relative_excludes,
    render_dockerfile,
    uses_base,
)
from ssmake.project.model import Project, Task

if TYPE_CHECKING:
    from ssmake.plan.fingerprint import Fingerprinter

LOCAL_LABEL_PREFIX = "local/"


def _docker_builder() -> ImageBuilder:
    from ssmake.images.docker import DockerBuilder

    return DockerBuilder()


#: How ssmake reaches docker and finds framework images (tests swap in fakes).
BUILDERS: dict[str, Callable[[], ImageBuilder]] = {"docker": _docker_builder}
CATALOGS: dict[str, Callable[[], FrameworkCatalog]] = {"sagemaker": SageMakerCatalog}


def local_label(task: Task) -> str:
    """The image recorded for a job that runs on the local interpreter."""
    version = f":{task.framework_version}" if task.framework_version else ""
    return f"{LOCAL_LABEL_PREFIX}{task.framework}{version}"


def is_local_label(image: str) -> bool:
    return image.startswith(LOCAL_LABEL_PREFIX)


def default_repository(project: str, task: str) -> str:
    """`ssmake/<project>/<task>`, spelled as docker and ECR accept it."""
    parts = [re.sub(r"[^a-z0-9._-]+", "-", p.lower()).strip("._-") for p in (project, task)]
    return "/".join(["ssmake", *(p or "x" for p in parts)])


class ImageService:
    """Resolves each task's image for one backend; `resolve` is the runner's
    image resolver. Safe to call from several task threads at once."""

    def __init__(
        self,
        project: Project,
        fingerprinter: Fingerprinter,
        *,
        backend: str,
        report: Reporter,
        builder: ImageBuilder | None = None,
        catalog: FrameworkCatalog | None = None,
    ) -> None:
        self.project = project
        self.fingerprinter = fingerprinter
        self.backend = backend
        self.report = report
        self._builder = builder
        self._frameworks = FrameworkImages(catalog) if catalog is not None else None
        self._region: str | None = project.region
        self._logins: set[str] = set()
        self._lock = threading.Lock()
        self._ref_locks: dict[str, threading.Lock] = {}

    # -- collaborators, made on first use ------------------------------------

    @property
    def builder(self) -> ImageBuilder:
        with self._lock:
            if self._builder is None:
                self._builder = BUILDERS["docker"]()
            return self._builder

    def region(self) -> str:
        if self._region is None:
            from ssmake import aws

            self._region = aws.resolve_region(None)
        return self._region

    def _ref_lock(self, ref: str) -> threading.Lock:
        with self._lock:
            return self._ref_locks.setdefault(ref, threading.Lock())

    # -- resolving -------------------------------------------------------------

    def resolve(self, task: Task) -> str:
        """The image the task's job runs in, built and pushed first when needed."""
        if self.backend == "local" and not task.local_docker:
            return local_label(task)
        if task.dockerfile is not None or task.dockerfile_content is not None:
            return self._built(task)
        image = self.base_image(task)
        if self.backend == "local":
            with self._ref_lock(image):
                if not self.builder.has_image(image):
                    self._pull(task, image)
        return image

    def base_image(self, task: Task) -> str:
        """`image.uri`, else the framework image for the task's region and instance type."""
        if task.image.uri:
            return task.image.uri
        with self._lock:
            if self._frameworks is None:
                self._frameworks = FrameworkImages(CATALOGS["sagemaker"]())
            frameworks = self._frameworks
        return frameworks.uri(task, self.region)

    def _dockerfile(self, task: Task) -> tuple[str, tuple[tuple[str, str], ...], dict[str, str]]:
        """The Dockerfile's text, the context's files and their digests."""
        if task.dockerfile_content is not None:
            return task.dockerfile_content, (), {}
        assert task.dockerfile is not None
        context = self.fingerprinter.resolve(task.dockerfile)
        try:
            text = (context / DOCKERFILE).read_text()
        except OSError as e:
            raise ConfigError(f"task {task.name}: cannot read {context / DOCKERFILE}: {e}") from e
        exclude = relative_excludes(context, self.fingerprinter.root, self.fingerprinter.excluded)
        files = context_files(context, exclude)
        digests = digest_files(files, self.fingerprinter.hashes)
        return text, tuple((rel, path) for rel, _st, path in files), digests

    def _built(self, task: Task) -> str:
        text, files, digests = self._dockerfile(task)
        base = self.base_image(task) if uses_base(text) else None
        rendered = render_dockerfile(text, base)
        tag = content_tag(rendered, digests)
        local_repo = (
            task.image.local_repo
            or (task.image.repo and split_repository(task.image.repo)[1])
            or default_repository(self.project.name, task.name)
        )
        local = f"{local_repo}:{tag}"
        push = self.backend == "sagemaker" or task.image.repo is not None
        with self._ref_lock(local):
            request = BuildRequest(rendered, files, (local,))
            if not push:
                self._ensure_local(task, request, base, None)
                return local
            return self._pushed(task, request, base, local_repo)

    def _ensure_local(
        self, task: Task, request: BuildRequest, base: str | None, pull: Callable[[], None] | None
    ) -> None:
        """The image present under its local tag: built, or pulled by `pull` when the
        registry already has it."""
        local = request.tags[0]
        if not self.builder.has_image(local):
            if pull is not None:
                pull()
            else:
                if base is not None and not self.builder.has_image(base):
                    self._login_for(base)
                self.report(Notice(f"building image {local}", task.name))
                self.builder.build(request, self._log(task, "docker build"))
        if task.image.tag:
            self.builder.tag(local, f"{split_ref(local)[0]}:{task.image.tag}")

    def _pushed(self, task: Task, request: BuildRequest, base: str | None, local_repo: str) -> str:
        local = request.tags[0]
        tag = split_ref(local)[1]
        registry, name = registry_for(
            task.image.repo or local_repo,
            self.region,
            on_notice=lambda message: self.report(Notice(message, task.name)),
        )
        repository = registry.repository(name)
        remote = f"{repository}:{tag}"
        present = registry.digest(name, tag)

        def pull() -> None:
            self._login(registry.login())
            self.builder.pull(remote, self._log(task, "docker pull"))
            self.builder.tag(remote, local)

        if present is None or self.backend == "local":
            self._ensure_local(task, request, base, pull if present is not None else None)
            self.builder.tag(local, remote)
        if present is None:
            self._login(registry.login())
            self.report(Notice(f"pushing image {remote}", task.name))
            self.builder.push(remote, self._log(task, "docker push"))
            if task.image.tag:
                human = f"{repository}:{task.image.tag}"
                self.builder.tag(local, human)
                self.builder.push(human, self._log(task, "docker push"))
        elif task.image.tag and registry.digest(name, task.image.tag) != present:
            registry.add_tag(name, tag, task.image.tag)
        return remote

    # -- registries ------------------------------------------------------------

    def _pull(self, task: Task, image: str) -> None:
        self._login_for(image)
        self.report(Notice(f"pulling image {image}", task.name))
        self.builder.pull(image, self._log(task, "docker pull"))

    def _login_for(self, image: str) -> None:
        self._login(base_login(image))

    def _login(self, login: Login | None) -> None:
        if login is None:
            return
        with self._lock:
            if login.registry in self._logins:
                return
        self.builder.login(login)
        with self._lock:
            self._logins.add(login.registry)

    def _log(self, task: Task, host: str) -> OutputFn:
        return lambda line: self.report(LogLine(task.name, host, line))
