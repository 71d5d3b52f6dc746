"""Framework base images: (framework, version, python) -> the SageMaker image URI.

The lookup itself is the `sagemaker` package's (`ssmake[sagemaker]`), behind the
small `FrameworkCatalog` interface and imported only when a task needs a
framework image. What ssmake adds sits here, in front of any catalog: defaults,
version aliases, and errors that name the valid choices.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ssmake.errors import ConfigError
from ssmake.project.model import Task

#: Used when a task names no framework_version: recent releases that every
#: `sagemaker>=2.200` knows for training, CPU and GPU.
DEFAULT_VERSIONS: dict[str, str] = {"pytorch": "2.1", "tensorflow": "2.13"}

MISSING_EXTRA = (
    "framework images need the sagemaker package: pip install 'ssmake[sagemaker]', or set image.uri"
)


@dataclass(frozen=True)
class FrameworkVersions:
    """The training images a catalog knows for one framework."""

    #: full version ("2.1.0") -> python versions ("py310", …)
    versions: Mapping[str, tuple[str, ...]]
    #: short version ("2.1") -> full version ("2.1.0")
    aliases: Mapping[str, str]


class FrameworkCatalog(Protocol):
    def versions(self, framework: str) -> FrameworkVersions:
        """The framework's training versions and the python versions of each."""
        ...

    def image_uri(
        self, framework: str, version: str, python_version: str, region: str, instance_type: str
    ) -> str:
        """The training image for a version that `versions` lists; the instance type
        picks the CPU or GPU image."""
        ...


def _image_uris() -> Any:
    try:
        from sagemaker import image_uris  # sagemaker 2.x

        return image_uris
    except ImportError:
        pass
    try:
        from sagemaker.core import image_uris  # sagemaker 3.x

        return image_uris
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None


class SageMakerCatalog:
    """The `sagemaker` package's image URI lookup (no AWS call: it ships the tables)."""

    def versions(self, framework: str) -> FrameworkVersions:
        config = _image_uris().config_for_framework(framework)["training"]
        versions = {
            str(v): tuple(str(p) for p in (spec.get("py_versions") or ()))
            for v, spec in config["versions"].items()
        }
        aliases = {str(k): str(v) for k, v in (config.get("version_aliases") or {}).items()}
        return FrameworkVersions(versions, aliases)

    def image_uri(
        self, framework: str, version: str, python_version: str, region: str, instance_type: str
    ) -> str:
        return str(
            _image_uris().retrieve(
                framework=framework,
                region=region,
                version=version,
                py_version=python_version,
                instance_type=instance_type,
                image_scope="training",
            )
        )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.replace("py", "").split("."))


def _python_key(python_version: str) -> tuple[int, ...]:
    digits = python_version.removeprefix("py")
    return (int(digits[0]), int(digits[1:] or 0)) if digits.isdigit() else (-1,)


def normalise_python(python_version: str) -> str:
    """`3.10`, `py3.10`, `310` and `py310` all name `py310` (`py3` stays `py3`)."""
    text = python_version.strip().lower().removeprefix("py").replace(".", "")
    return f"py{text}"


def _choices(known: FrameworkVersions) -> str:
    short = {full: alias for alias, full in known.aliases.items()}
    names = sorted({short.get(v, v) for v in known.versions}, key=_version_key)
    return ", ".join(names)


@dataclass(frozen=True)
class FrameworkChoice:
    framework: str
    version: str
    python_version: str


def choose(task: Task, known: FrameworkVersions) -> FrameworkChoice:
    """The task's framework triple with defaults filled in; a ConfigError naming the
    valid choices when the catalog has no such image."""
    where = f"task {task.name}"
    asked = task.framework_version or DEFAULT_VERSIONS.get(task.framework)
    if asked is None:
        raise ConfigError(f"{where}: set framework_version (or image.uri) for {task.framework}")
    version = known.aliases.get(asked, asked)
    if version not in known.versions:
        raise ConfigError(
            f"{where}: framework_version {asked!r} has no SageMaker {task.framework} training "
            f"image; choose one of {_choices(known)} (upgrade the sagemaker package for "
            "newer ones), or set image.uri"
        )
    pythons = known.versions[version]
    if task.python_version is None:
        if not pythons:
            raise ConfigError(f"{where}: set python_version for {task.framework} {version}")
        return FrameworkChoice(task.framework, version, max(pythons, key=_python_key))
    python = normalise_python(task.python_version)
    if pythons and python not in pythons:
        raise ConfigError(
            f"{where}: python_version {task.python_version!r} has no {task.framework} "
            f"{version} training image; choose one of {', '.join(sorted(pythons))}"
        )
    return FrameworkChoice(task.framework, version, python)


class FrameworkImages:
    """Resolves tasks' framework images through a catalog, remembering the answers."""

    def __init__(self, catalog: FrameworkCatalog) -> None:
        self.catalog = catalog
        self._known: dict[str, FrameworkVersions] = {}
        self._uris: dict[str, str] = {}
        self._lock = threading.Lock()

    def uri(self, task: Task, region: Callable[[], str]) -> str:
        """The task's framework image; `region` is asked only once the choice is valid."""
        with self._lock:
            known = self._known.get(task.framework)
            if known is None:
                known = self._known[task.framework] = self.catalog.versions(task.framework)
            choice = choose(task, known)
            where = region()
            key = (choice.framework, choice.version, choice.python_version, where)
            found = self._uris.get(f"{key}{task.instance_type}")
            if found is not None:
                return found
            try:
                found = self.catalog.image_uri(*key, task.instance_type)
            except ValueError as e:
                raise ConfigError(
                    f"task {task.name}: no SageMaker {task.framework} image for "
                    f"{choice.version}/{choice.python_version} on {task.instance_type} "
                    f"in {where}: {e}"
                ) from e
            self._uris[f"{key}{task.instance_type}"] = found
            return found
