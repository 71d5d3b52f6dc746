"""Wiring: a loaded project plus its store, backend, planner and engine."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssmake.backends import BACKENDS, Backend
from ssmake.build.inflight import holder_alive
from ssmake.errors import ConfigError
from ssmake.events import PhaseProgress, Reporter
from ssmake.plan import layout
from ssmake.plan.cost import Costing, costing_for
from ssmake.plan.fingerprint import Fingerprinter, S3Lister, StateLister
from ssmake.plan.hashcache import HashCache
from ssmake.plan.planner import Planner
from ssmake.plan.statdigest import StatDigests
from ssmake.project.model import Project
from ssmake.stores import Store, open_store

if TYPE_CHECKING:
    from ssmake.build.budget import Budget
    from ssmake.build.engine import Engine
    from ssmake.build.runner import ImageResolver


def _s3_lister(region: str | None) -> S3Lister:
    def list_s3(uri: str) -> Mapping[str, tuple[int, str]]:
        from ssmake.stores import store_for_uri

        store, key = store_for_uri(uri, region=region)
        return {o.key: (o.size, o.etag) for o in store.list(key)}

    return list_s3


def _state_lister(store: Store, project: str) -> StateLister:
    def list_state(task: str) -> Mapping[str, tuple[int, str]]:
        prefix = layout.state_prefix(project, task)
        return {o.key[len(prefix) :]: (o.size, o.etag) for o in store.list(prefix)}

    return list_state


@dataclass
class Session:
    project: Project
    store: Store
    hashes: HashCache
    fingerprinter: Fingerprinter
    planner: Planner
    work_dir: Path
    digests: StatDigests

    def backend(self, **kwargs: object) -> Backend:
        factory = BACKENDS.get(self.project.backend)
        if factory is None:
            raise ConfigError(f"unknown backend {self.project.backend!r}: use local or sagemaker")
        if self.project.backend == "local":
            kwargs.setdefault("work_dir", self.work_dir)
        else:
            kwargs.setdefault("region", self.project.region)
            kwargs.setdefault("store", self.store)
        return factory(**kwargs)

    def costing(self) -> Costing:
        """Prices for the project's jobs, in its region, on its backend."""
        return costing_for(self.project, os.environ)

    def engine(
        self,
        reporter: Reporter,
        *,
        jobs: int = 1,
        keep_going: bool = False,
        budget: Budget | None = None,
    ) -> Engine:
        from ssmake.build.engine import Engine
        from ssmake.build.runner import TaskRunner

        backend = self.backend()
        self.fingerprinter.on_hashing = lambda task, done, total: reporter(
            PhaseProgress(task, "hashing", done, total)
        )
        runner = TaskRunner(
            self.project,
            self.store,
            backend,
            self.planner,
            reporter,
            work_dir=self.work_dir,
            image_resolver=self.image_resolver(backend, reporter),
            costing=self.costing(),
        )
        return Engine(
            self.project,
            self.planner,
            runner,
            backend,
            reporter,
            jobs=jobs,
            keep_going=keep_going,
            budget=budget,
        )

    def image_resolver(self, backend: Backend, reporter: Reporter) -> ImageResolver:
        """Each task's image on `backend`, built and pushed first when needed."""
        from ssmake.images.resolve import ImageService

        images = ImageService(
            self.project, self.fingerprinter, backend=backend.name, report=reporter
        )
        return images.resolve

    def close(self) -> None:
        self.hashes.save()
        self.digests.save()


def open_session(project: Project, *, backend: str | None = None) -> Session:
    """Open the store and caches of a project (optionally on another backend)."""
    if backend is not None and backend != project.backend:
        # A job on SageMaker cannot read a local store: --backend sagemaker on a
        # project with the local default store uses the account's default bucket.
        local_default = backend == "sagemaker" and project.store == ".ssmake"
        project = replace(project, backend=backend, store="" if local_default else project.store)
    store_address = project.store
    if not store_address:
        if project.backend == "sagemaker":
            from ssmake.backends.sagemaker.roles import default_bucket_url

            store_address = default_bucket_url(project.region)
        else:
            store_address = ".ssmake"
    if project.backend == "sagemaker" and store_address.startswith("s3://"):
        from ssmake.backends.sagemaker.roles import ensure_bucket

        ensure_bucket(store_address[5:].split("/", 1)[0], project.region)
    work_dir = project.root / ".ssmake" / "cache"
    store = open_store(store_address, root=project.root, region=project.region)
    hashes = HashCache(work_dir / "hashes.bin")
    with contextlib.suppress(OSError):
        (work_dir / "hashes.json").unlink()  # the cache's JSON form, before hashes.bin
    has_s3 = any(i.s3 for t in project.tasks.values() for i in t.inputs)
    lister = _s3_lister(project.region) if has_s3 else None
    fingerprinter = Fingerprinter(
        project, hashes, s3_lister=lister, state_lister=_state_lister(store, project.name)
    )
    digests = StatDigests(work_dir / "stat-digests.json")
    planner = Planner(project, store, fingerprinter, digests, holder_alive=_holder_alive)
    return Session(project, store, hashes, fingerprinter, planner, work_dir, digests)


def _holder_alive(record: Mapping[str, Any]) -> bool:
    """A task is running while the ssmake that claimed it lives, or its job was
    launched on a backend where jobs outlive ssmake."""
    return record.get("launched") is True or holder_alive(record)
