"""The watch loop: after every save that matters, build what became stale.

A SaveObserver (observer.py) reports the saves under the directories the Scope
(plan/watch_scope.py) plans: what selected tasks read, never the store or
outputs. Those that can change a selected task's fingerprint (not ignored, read
by a task, the Ssmfile, an ignore file) reach the Watcher's inbox. One loop
thread debounces them into batches and runs one build at a time in a build
thread. A batch that settles during a build is queued (one follow-up build
however many saves), or with on_busy="restart" it stops the build when a running
task is affected, and builds again. The caller passes in the WatchView that shows
it all (ui/board.py has the terminal's).

Decisions beyond DESIGN.md:
- a batch builds the tasks whose files changed and their downstream tasks (their
  upstream tasks come along, as with `ssmake TASK`): a failed task is retried by
  a save to its own files or an upstream task's, not by any save;
- builds keep going after a failure (as with -k): a failed task blocks only the
  tasks that need it;
- an invalid Ssmfile at start exits 2 like every command; once watching, a broken
  Ssmfile is shown and the watch goes on until a save fixes it;
- Ctrl-C stops local jobs, leaves remote jobs running (and names them), exits 130.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ssmake.build.engine import BuildResult
from ssmake.build.observer import SaveObserver
from ssmake.build.watch_answer import WatchAnswers
from ssmake.errors import SsmakeError
from ssmake.events import Event, JobLaunched, TaskDone, TaskFailedEvent, TaskStarted
from ssmake.plan import layout
from ssmake.plan.watch_scope import Scope
from ssmake.project.graph import downstream
from ssmake.project.load import load_project
from ssmake.project.model import Project

# Outcomes of tasks a build did not get to: the next build owes them a run.
_UNFINISHED = ("skipped", "interrupted")


class WatchView(Protocol):
    """What the user sees: engine events plus the watcher's own messages."""

    def __call__(self, event: Event) -> None: ...

    def build_started(self, trigger: Sequence[str]) -> None: ...

    def note(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...

    def close(self) -> None: ...


def _describe(names: Sequence[str], limit: int = 3) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


@dataclass
class Build:
    """One build of the watch: what triggered it and how it ended."""

    number: int
    trigger: tuple[str, ...]  # the changed files (none for the first build)
    targets: tuple[str, ...]
    started: float = field(default_factory=time.time)
    ended: float | None = None
    result: BuildResult | None = None
    error: str | None = None
    restarted: bool = False  # stopped for a newer change (on_busy="restart")
    interrupt: threading.Event = field(default_factory=threading.Event, repr=False)
    running: dict[str, str | None] = field(default_factory=dict, repr=False)  # task -> job
    crash: BaseException | None = field(default=None, repr=False)


class _Stop:
    """Asks the loop thread to finish."""


class Watcher:
    """Builds once, then after every batch of saves that matters; start() and stop()."""

    def __init__(
        self,
        root: Path,
        *,
        ssmfile: Path | None = None,
        targets: Sequence[str] = (),
        backend: str | None = None,
        on_busy: str = "queue",
        debounce: float = 0.1,
        jobs: int = 1,
        view: WatchView,
    ) -> None:
        self.root = root.resolve()
        self.ssmfile = ssmfile
        self.targets = tuple(targets)
        self.backend = backend
        self.on_busy = on_busy
        self.debounce = debounce
        self.jobs = jobs
        self.view = view
        self.builds: list[Build] = []
        self.config_error: str | None = None
        self.queued: tuple[str, ...] = ()  # settled changes waiting for the running build
        self.left_running: list[tuple[str, str]] = []  # (task, job) detached by stop()
        self._project: Project | None = None
        self._scope: Scope | None = None
        self._inbox: queue.Queue[Path | Build | _Stop] = queue.Queue()
        self._cond = threading.Condition()
        self._current: Build | None = None
        self._pending: dict[Path, None] = {}  # changes not built yet, in order
        self._owed: set[str] = set()  # tasks an interrupted build did not finish
        self._build_thread: threading.Thread | None = None
        self._loop_thread: threading.Thread | None = None
        self._observer = SaveObserver(self._on_save)
        self.answers = WatchAnswers(self.root)  # for `ssmake --check` in another shell
        self._crash: BaseException | None = None
        self._stopping = threading.Event()

    # -- the outside ----------------------------------------------------------------

    def start(self) -> None:
        """Load the project (ConfigError if invalid), watch, and start the first build."""
        self._project = load_project(self.root, self.ssmfile)
        self._scope = Scope.of(self._project, self.targets)
        self.answers.start(lambda: self._project if self.idle and not self.config_error else None)
        self._observer.start({**self._scope.watch_plan(), **self.answers.watch_plan()})
        self._loop_thread = threading.Thread(target=self._loop, name="watch", daemon=True)
        self._loop_thread.start()

    def stop(self) -> None:
        """Stop the running build (local jobs end; remote ones are left running and
        listed in left_running), then stop watching."""
        with self._cond:
            self._stopping.set()  # launch nothing more
            if self._current is not None:
                self._current.interrupt.set()
        self._inbox.put(_Stop())
        if self._loop_thread is not None:
            self._loop_thread.join()
        self._observer.stop()
        self.answers.stop()

    def join(self) -> None:
        """Wait until the watch ends: after stop(), or on a bug (re-raised here)."""
        assert self._loop_thread is not None
        while self._loop_thread.is_alive():
            self._loop_thread.join(0.5)
        if self._crash is not None:
            raise self._crash

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait up to `timeout` seconds for `condition()`; whether it became true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    @property
    def idle(self) -> bool:
        """No build running and no change waiting for one."""
        # unfinished_tasks counts messages until handled, not only until taken.
        return self._current is None and not self._inbox.unfinished_tasks and not self._pending

    # -- events in ------------------------------------------------------------------

    def _rewatch(self) -> None:
        """Watch what the scope needs now (directories come and go)."""
        assert self._scope is not None
        self._observer.rewatch({**self._scope.watch_plan(), **self.answers.watch_plan()})

    def _on_save(self, paths: Sequence[Path], is_directory: bool) -> None:
        scope = self._scope
        assert scope is not None
        for path in paths:
            if self.answers.cookie(path) or scope.ignored(path, is_directory):
                continue
            # While the Ssmfile is broken, any save may fix it (a missing entry point).
            if self.config_error is not None or scope.matters(path):
                self.answers.saw(scope, self._project, path, self.config_error is not None)
                self._inbox.put(path)

    def _on_event(self, event: Event) -> None:
        with self._cond:
            build = self._current
            if build is not None:
                if isinstance(event, TaskStarted):
                    build.running[event.task] = None
                elif isinstance(event, JobLaunched):
                    build.running[event.task] = event.job
                elif isinstance(event, TaskDone | TaskFailedEvent):
                    build.running.pop(event.task, None)
        self.view(event)

    # -- the loop -------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._run_loop()
        except BaseException as e:  # a bug: join() re-raises it on the main thread
            self._crash = e
        finally:
            with self._cond:
                self._cond.notify_all()

    def _run_loop(self) -> None:
        self._launch([], everything=True)
        settle_at: float | None = None
        while not self._stopping.is_set():
            timeout = None if settle_at is None else max(0.0, settle_at - time.monotonic())
            try:
                message = self._inbox.get(timeout=timeout)
            except queue.Empty:
                settle_at = None  # the burst is over
                self._rewatch()
            else:
                try:
                    if isinstance(message, Path):
                        self._pending[message] = None
                        settle_at = time.monotonic() + self.debounce
                        continue
                    if isinstance(message, Build):
                        self._finished(message)
                finally:
                    self._inbox.task_done()
            if not self._pending or settle_at is not None or self._stopping.is_set():
                continue
            batch = list(self._pending)
            if self._current is None:
                self._set_queued(())
                self._launch(batch)
                self._pending.clear()
            else:
                self._busy(batch)
        if self._build_thread is not None:
            self._build_thread.join()

    def _set_queued(self, names: tuple[str, ...]) -> None:
        with self._cond:
            self.queued = names
            self._cond.notify_all()

    def _busy(self, batch: list[Path]) -> None:
        """A batch settled while a build runs: queue it, or restart the build."""
        build, scope = self._current, self._scope
        assert build is not None and scope is not None
        self._set_queued(scope.names(batch))
        if build.restarted:
            return  # it is stopping; the batch builds next
        what = _describe(scope.names(batch))
        if self.on_busy != "restart":
            self.view.note(f"change in {what}: queued, to build after the running build")
        elif self._outdates(batch, build):
            build.restarted = True
            build.interrupt.set()
            self.view.note(f"change in {what}: stopping the running build to restart it")
        else:
            self.view.note(f"change in {what}: queued (no running task depends on it)")

    def _outdates(self, batch: list[Path], build: Build) -> bool:
        """Whether the batch changes what a running task of the build runs with."""
        assert self._scope is not None
        if any(self._scope.replans_all(p) for p in batch):
            return True
        hit = self._with_downstream(self._scope.affected(batch))
        with self._cond:
            return bool(hit & set(build.running))

    def _with_downstream(self, names: set[str]) -> set[str]:
        assert self._project is not None
        out = set(names)
        for name in names:
            out |= downstream(self._project, name)
        return out

    def _reload(self) -> bool:
        try:
            project = load_project(self.root, self.ssmfile)
            scope = Scope.of(project, self.targets)
        except SsmakeError as e:
            self.config_error = e.message
            self.view.error(e.message)
            self.view.note("still watching: the next save retries")
            return False
        self._project, self._scope = project, scope
        self._rewatch()
        if self.config_error is not None:
            self.view.note(f"{project.ssmfile.name} is valid again")
        self.config_error = None
        return True

    def _launch(self, batch: list[Path], *, everything: bool = False) -> None:
        """Start a build for a settled batch of changes (no build is running)."""
        assert self._project is not None and self._scope is not None
        if self._stopping.is_set():
            return
        if self.config_error is not None or self._scope.ssmfile in batch:
            if not self._reload():
                return
            everything = True
        elif any(self._scope.replans_all(p) for p in batch):
            self._scope = Scope.of(self._project, self.targets)  # the ignore rules changed
            everything = True
        project, scope = self._project, self._scope
        wanted = set(scope.tasks) if everything else scope.affected(batch) | self._owed
        wanted = self._with_downstream(wanted)
        targets = tuple(n for n in scope.tasks if n in wanted)
        if not targets:
            return
        self._owed = set()
        trigger = scope.names(batch)
        if batch:
            self.view.note(f"change in {_describe(trigger)}: rebuilding")
        build = Build(len(self.builds) + 1, trigger, targets)
        with self._cond:
            if self._stopping.is_set():
                return
            self.builds.append(build)
            self._current = build
            self.answers.launched(build.number)
            self._cond.notify_all()
        self.view.build_started(trigger)
        self._build_thread = threading.Thread(
            target=self._build, args=(project, build), name=f"build-{build.number}", daemon=True
        )
        self._build_thread.start()

    def _build(self, project: Project, build: Build) -> None:
        from ssmake.build.session import open_session

        try:
            session = open_session(project, backend=self.backend)
            try:
                # Keep going: a broken task must not hold back the independent ones.
                engine = session.engine(self._on_event, jobs=self.jobs, keep_going=True)
                engine.interrupt = build.interrupt  # the watcher decides when to stop
                build.result = engine.build(build.targets)
                self.answers.record(build.number, session, build.result)
                if build.interrupt.is_set() and engine.backend.detaches:
                    for task, job in build.running.items():
                        if job is None:
                            continue
                        if build.restarted:
                            engine.backend.stop(job)
                            session.store.delete(layout.inflight_key(project.name, task))
                            self.view.note(f"stopped job {job} of task {task}")
                        else:
                            self.left_running.append((task, job))
            finally:
                session.close()
        except SsmakeError as e:
            build.error = e.message
        except BaseException as e:
            build.crash = e
        finally:
            build.ended = time.time()
            self._inbox.put(build)

    def _finished(self, build: Build) -> None:
        if self._build_thread is not None:
            self._build_thread.join()
        if build.crash is not None:
            raise build.crash
        result = build.result
        if build.error is not None:
            self.view.error(build.error)
            self._owed |= set(build.targets)
        elif result is not None:
            self._owed |= {o.task for o in result.outcomes if o.status in _UNFINISHED}
        if result is not None and not build.restarted:
            counts: dict[str, int] = {}
            for o in result.outcomes:
                counts[o.status] = counts.get(o.status, 0) + 1
            summary = ", ".join(f"{n} {status}" for status, n in counts.items())
            self.view.note(f"{summary}; watching for changes (Ctrl-C to stop)")
        with self._cond:
            self._current = None
            self._cond.notify_all()
