"""The Python API: what `ssmake` does from the shell, from Python.

    import ssmake

    project = ssmake.Project("path/to/project")      # reads path/to/project/Ssmfile.toml
    for plan in project.plan():
        print(plan.name, plan.state, plan.reasons)   # up-to-date | stale | running | blocked
    outcomes = project.build(["train"])              # raises BuildFailed when a task fails

A project defined in Python rather than in an Ssmfile (what the `ssm` command
and `ssmake.compat.SageMakerProject` run) comes from `Project.from_tasks`.

Every error is an `ssmake.SsmakeError` with a message meant for people; a failed
build raises `BuildFailed` (a `TaskFailed`), which carries every task's outcome.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssmake.build.engine import Outcome
from ssmake.errors import ConfigError, SsmakeError, TaskFailed
from ssmake.events import Reporter
from ssmake.plan import layout
from ssmake.plan.planner import TaskPlan
from ssmake.project.model import Project as ProjectModel
from ssmake.project.model import Task
from ssmake.project.names import BACKEND_NAMES

if TYPE_CHECKING:
    from ssmake.build.session import Session

__all__ = ["BACKEND_ENV", "BuildFailed", "Outcome", "Project", "TaskPlan", "default_backend"]

BACKEND_ENV = "SSMAKE_BACKEND"
"""The environment variable naming the backend of `ssm` and of projects defined in Python."""

_PROJECT_NAME = re.compile(r"[A-Za-z0-9-]+")
_FAILING = ("failed", "blocked")


class BuildFailed(TaskFailed):
    """A build in which a task failed or could not run (exit code 1).

    `outcomes` holds the outcome of every task the build selected, in build order.
    """

    def __init__(self, outcomes: list[Outcome]) -> None:
        lines = []
        for outcome in outcomes:
            if outcome.status in _FAILING:
                first = outcome.message.strip().splitlines()[0] if outcome.message.strip() else ""
                lines.append(f"{outcome.task} {outcome.status}" + (f": {first}" if first else ""))
        super().__init__("; ".join(lines) or "the build failed")
        self.outcomes = outcomes


def default_backend() -> str:
    """The backend of a project defined in Python: `$SSMAKE_BACKEND`, else "sagemaker"."""
    backend = os.environ.get(BACKEND_ENV, "").strip() or "sagemaker"
    if backend not in BACKEND_NAMES:
        raise ConfigError(
            f"{BACKEND_ENV}={backend!r} is not a backend; set it to one of "
            f"{', '.join(BACKEND_NAMES)}, or unset it"
        )
    return backend


class Project:
    """An ssmake project: its tasks, and the store and backend that build them.

    `Project(path)` loads `path/Ssmfile.toml` (or `ssmfile`) and validates it;
    `backend` overrides the project's backend, as `ssmake --backend` does.

    Progress (job launches, the jobs' log lines, results) goes to `reporter`, a
    callable taking one `ssmake.events` event; by default it is printed on
    stderr, and `ssmake.events.ignore_events` silences it. `verbosity` tunes the
    default printer: -1 hides the jobs' log lines, 1 shows job status changes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ".",
        *,
        ssmfile: str | os.PathLike[str] | None = None,
        backend: str | None = None,
        reporter: Reporter | None = None,
        verbosity: int = 0,
    ) -> None:
        from ssmake.project.load import load_project

        root = Path(path).resolve()
        file = None if ssmfile is None else Path(ssmfile).resolve()
        self._init(load_project(root, file), backend, reporter, verbosity)

    def _init(
        self,
        model: ProjectModel,
        backend: str | None,
        reporter: Reporter | None,
        verbosity: int,
    ) -> None:
        if backend is not None and backend not in BACKEND_NAMES:
            raise ConfigError(f"unknown backend {backend!r}: use {' or '.join(BACKEND_NAMES)}")
        self._model = model
        self._backend = backend
        self._reporter = reporter
        self._verbosity = verbosity
        self._in_memory = False

    @classmethod
    def from_tasks(
        cls,
        project_name: str,
        tasks: Iterable[Task],
        *,
        root: str | os.PathLike[str] | None = None,
        backend: str | None = None,
        store: str | None = None,
        region: str | None = None,
        reporter: Reporter | None = None,
        verbosity: int = 0,
    ) -> Project:
        """A project of `tasks` defined in Python, as the `ssm` command builds one.

        - `root`: the directory the tasks' relative paths start from (default: the
          working directory);
        - `backend`: "local" or "sagemaker" (default: `default_backend()`);
        - `store`: a directory or `s3://bucket[/prefix]` (default: `.ssmake` under
          `root` on the local backend, the account's default bucket on sagemaker).

        A task that one of `tasks` consumes (`Input(task=...)`) but that is not
        among them is a task of the same project that ran before (another `ssm`
        run): its completion marker in the store stands for it, and it is never
        run from here. Build tasks with `ssmake.project.load.build_task` to have them
        validated as an Ssmfile's are.
        """
        if not _PROJECT_NAME.fullmatch(project_name) or project_name == "cache":
            hint = re.sub(r"[^A-Za-z0-9-]+", "-", project_name).strip("-") or "my-project"
            raise ConfigError(
                f"bad project name {project_name!r}: use only letters, digits and '-'"
                + ("" if hint in ("cache", project_name) else f", like {hint!r}")
            )
        backend = default_backend() if backend is None else backend
        if store is None:
            store = ".ssmake" if backend == "local" else ""
        elif backend == "sagemaker" and store and not store.startswith("s3://"):
            raise ConfigError(
                f"store {store!r}: the sagemaker backend needs an S3 store, s3://BUCKET[/PREFIX]"
            )
        defined = {task.name: task for task in tasks}
        consumed = (name for task in defined.values() for name in task.upstream())
        base = Path.cwd() if root is None else Path(root)
        model = ProjectModel(
            name=project_name,
            root=base.resolve(),
            ssmfile=Path("<no Ssmfile>"),
            backend=backend,
            store=store,
            region=region,
            tasks=defined,
            external=tuple(dict.fromkeys(n for n in consumed if n not in defined)),
        )
        project = cls.__new__(cls)
        project._init(model, None, reporter, verbosity)
        project._in_memory = True
        return project

    # -- what the project is ---------------------------------------------------

    @property
    def name(self) -> str:
        """The project's name: the first part of every key in its store."""
        return self._model.name

    @property
    def root(self) -> Path:
        """The directory the tasks' relative paths start from."""
        return self._model.root

    @property
    def tasks(self) -> dict[str, Task]:
        """The tasks, by name, in file order (plain frozen data)."""
        return dict(self._model.tasks)

    @property
    def model(self) -> ProjectModel:
        """The whole loaded project as plain data (settings and tasks)."""
        return self._model

    # -- planning and building -------------------------------------------------

    def plan(self, targets: Iterable[str] = (), force: bool = False) -> list[TaskPlan]:
        """What a build of `targets` would do, without running anything.

        Returns one `TaskPlan` per task the targets need, upstream first: `state`
        is "up-to-date", "stale" (it would run), "running" (a job of this
        fingerprint is in flight) or "blocked" (it cannot run), with `reasons`
        saying why. No targets means the project's default targets, else every
        task. `force=True` plans as `ssmake -B` does.
        """
        names = list(targets)
        with self._session() as session:
            return session.planner.plan(names, force=self._forced(names, force))

    def build(
        self,
        targets: Iterable[str] = (),
        force: bool = False,
        jobs: int = 1,
        keep_going: bool = False,
    ) -> list[Outcome]:
        """Build `targets` and everything they need; run only what is stale.

        Returns an `Outcome` per task, upstream first, whose `status` is
        "up-to-date" (nothing to do), "restored" (an earlier run matched), or
        "done" (a job ran). `force=True` reruns the targets (every selected task
        when none is named); `jobs` runs up to that many independent tasks at
        once; `keep_going` goes on with independent tasks after a failure.

        Raises `BuildFailed` (with every outcome) when a task failed or was
        blocked, `ConfigError` when a consumed task of another run has no result
        in the store, and `KeyboardInterrupt` when the build was interrupted
        (no marker is written for an unfinished task).
        """
        from ssmake.project.graph import select

        names = list(targets)
        with self._session() as session:
            selected = select(session.project, names)
            self._check_external(session, selected)
            with self._reporting() as reporter:
                engine = session.engine(reporter, jobs=jobs, keep_going=keep_going)
                result = engine.build(names, force=self._forced(names, force))
        if result.interrupted:
            raise KeyboardInterrupt
        if result.failed:
            raise BuildFailed(result.outcomes)
        return result.outcomes

    def status(self) -> list[TaskPlan]:
        """The plan of every task of the project (see `plan`), as `ssmake status`."""
        return self.plan(list(self._model.tasks))

    def image(self, task: str) -> str:
        """The image `task`'s jobs run in on this project's backend.

        A Dockerfile image is built (and on sagemaker pushed) first when its
        content tag is missing, as a build would. On the local backend, which
        runs jobs on this machine's Python, it is a `local/<framework>` label.
        """
        with self._session() as session:
            if task not in session.project.tasks:
                raise ConfigError(f"unknown task {task!r} (tasks: {', '.join(self.tasks)})")
            with self._reporting() as reporter:
                resolve = session.image_resolver(session.backend(), reporter)
                return resolve(session.project.tasks[task])

    # -- results ----------------------------------------------------------------

    def result(self, task: str) -> dict[str, Any] | None:
        """The completion marker of `task`'s current result (job, fingerprint,
        outputs), or None when it has not completed yet."""
        with self._session() as session:
            self._known(session, task)
            return session.planner.read_marker(task)

    def download(
        self,
        task: str,
        dest: str | os.PathLike[str],
        kinds: Collection[str] = ("model", "output"),
    ) -> list[Path]:
        """Bring `task`'s current results into `dest`, one directory per kind.

        `kinds` are among "model" and "output" (the job's tarballs, extracted),
        "state" (the task's state) and "logs" (`dest/logs/logs<i>`, one file per
        instance). Returns the directories written. Raises SsmakeError when the
        task has no result yet.
        """
        from ssmake.build.downloads import download_results
        from ssmake.project.names import DOWNLOAD_KINDS

        bad = [kind for kind in kinds if kind not in DOWNLOAD_KINDS]
        if bad:
            raise ConfigError(f"cannot download {bad[0]!r}: use {', '.join(DOWNLOAD_KINDS)}")
        target = Path(dest)
        if not target.is_absolute():
            target = self.root / target
        with self._session() as session:
            self._known(session, task)
            marker = session.planner.read_marker(task)
            if marker is None:
                raise SsmakeError(
                    f"task {task} of project {self.name} has no result in {session.store.url} yet: "
                    "build it first"
                )
            return download_results(
                session.store, self.name, task, marker, target, kinds, session.work_dir
            )

    def clean_state(self, task: str) -> int:
        """Delete `task`'s state (kept between its jobs); returns how many files went.

        Its current result stays; build with `force=True` to run it again.
        """
        with self._session() as session:
            self._known(session, task)
            return session.store.delete_prefix(layout.state_prefix(self.name, task))

    # -- plumbing -----------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Session]:
        from ssmake.build.session import open_session

        session = open_session(self._model, backend=self._backend)
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def _reporting(self) -> Iterator[Reporter]:
        if self._reporter is not None:
            yield self._reporter
            return
        from ssmake.ui.report import make_reporter

        reporter = make_reporter(verbosity=self._verbosity)
        try:
            yield reporter
        finally:
            close = getattr(reporter, "close", None)
            if close is not None:
                close()

    def _forced(self, targets: list[str], force: bool) -> list[str]:
        if not force:
            return []
        from ssmake.project.graph import select

        return targets or select(self._model, targets)

    def _known(self, session: Session, task: str) -> None:
        # A project defined in Python may read the results of any task of its store.
        if task not in session.project.tasks and not self._in_memory:
            from ssmake.project.graph import select

            select(session.project, [task])  # raises the "unknown task" error

    def _check_external(self, session: Session, selected: list[str]) -> None:
        """A consumed task that ran elsewhere must have a result to consume."""
        for name in selected:
            for inp in session.project.tasks[name].inputs:
                upstream = inp.task
                if upstream is None or upstream not in session.project.external:
                    continue
                if session.planner.read_marker(upstream) is None:
                    raise ConfigError(
                        f"task {name} consumes the {inp.output} of task {upstream} (input "
                        f"{inp.name}), but {upstream} has no completed run in project "
                        f"{self.name} ({session.store.url}): run {upstream} first"
                    )
