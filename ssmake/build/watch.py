"""The watch loop: after every save that matters, build what became stale.

watchdog reports the saves under the directories a Scope plans (what selected
tasks read, never the store or outputs); the ones that can change a selected
task's fingerprint (not ignored, read by a task, the Ssmfile, an ignore file)
reach the Watcher's inbox. One loop thread debounces them into batches and runs
one build at a time in a build thread. A batch that settles during a build is
queued (one follow-up build however many saves), or with on_busy="restart" it
stops the build when a running task is affected, and builds again.

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

import fnmatch
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from ssmake.build.engine import BuildResult
from ssmake.errors import SsmakeError
from ssmake.events import Event, JobLaunched, TaskDone, TaskFailedEvent, TaskStarted
from ssmake.plan import layout
from ssmake.plan.ignore import ALWAYS_IGNORED, IGNORE_FILES, IgnoreMatcher
from ssmake.project.graph import downstream, select
from ssmake.project.load import load_project
from ssmake.project.model import Project, Task
from ssmake.ui.report import PlainReporter

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers.api import BaseObserver, ObservedWatch

# Files editors write beside the one being saved (vim's swap files and its
# "4913" write test, emacs locks and autosaves, backups, JetBrains' safe write).
EDITOR_FILES = (
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "4913",
    "*.tmp",
    "*___jb_tmp___",
    "*___jb_old___",
)
# Outcomes of tasks a build did not get to: the next build owes them a run.
_UNFINISHED = ("skipped", "interrupted")


class WatchView(Protocol):
    """What the user sees: engine events plus the watcher's own messages."""

    def __call__(self, event: Event) -> None: ...

    def build_started(self, trigger: Sequence[str]) -> None: ...

    def note(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...

    def close(self) -> None: ...


class PlainWatchView(PlainReporter):
    """Plain lines, for pipes and logs: `ssmake: watch: change in x.py: rebuilding`."""

    def build_started(self, trigger: Sequence[str]) -> None:
        pass  # the watcher's note already says what triggered the build

    def note(self, message: str) -> None:
        if self.verbosity >= 0:
            self._say(f"ssmake: watch: {message}")

    def error(self, message: str) -> None:
        self._say(f"ssmake: error: {message}")

    def close(self) -> None:
        pass


def make_view(stream: IO[str] | None = None, *, verbosity: int = 0) -> WatchView:
    """The live board on a terminal, plain lines otherwise."""
    target = stream if stream is not None else sys.stderr
    if target.isatty():
        from ssmake.ui.board import Board

        return Board(target, verbosity=verbosity)
    return PlainWatchView(target, verbosity=verbosity)


def _within(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def _describe(names: Sequence[str], limit: int = 3) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def task_reads(project: Project, task: Task) -> tuple[Path, ...]:
    """The files and directories a task's fingerprint reads (resolved as the
    Fingerprinter resolves them)."""
    names = [task.source_dir or task.entry_point, *task.dependencies]
    names += [n for n in (task.requirements, task.dockerfile) if n is not None]
    names += [i.path for i in task.inputs if i.path is not None]
    paths = [Path(n).expanduser() for n in names]
    return tuple((p if p.is_absolute() else project.root / p).resolve() for p in paths)


def _never_read(project: Project) -> tuple[Path, ...]:
    """Output paths, and the store when it is a directory."""
    places = [t.output_path for t in project.tasks.values() if t.output_path]
    if not project.store.startswith("s3://"):
        places.append(project.store or ".ssmake")
    paths = {Path(os.path.normpath(project.root / Path(p).expanduser())) for p in places}
    return tuple(sorted(p for p in paths if p != project.root))


@dataclass(frozen=True)
class Scope:
    """Which saves matter to the selected tasks of a project, and where to watch."""

    root: Path
    ssmfile: Path
    tasks: tuple[str, ...]  # the selected tasks, upstream first
    reads: dict[str, tuple[Path, ...]]
    never_read: tuple[Path, ...]
    matcher: IgnoreMatcher

    @classmethod
    def of(cls, project: Project, targets: Sequence[str]) -> Scope:
        tasks = tuple(select(project, list(targets)))
        reads = {name: task_reads(project, project.tasks[name]) for name in tasks}
        hidden = _never_read(project)
        inside = frozenset(
            p.relative_to(project.root).as_posix() for p in hidden if _within(p, project.root)
        )
        matcher = IgnoreMatcher(project.root, inside)
        return cls(project.root, project.ssmfile.resolve(), tasks, reads, hidden, matcher)

    def ignored(self, path: Path, is_dir: bool) -> bool:
        if any(fnmatch.fnmatchcase(path.name, pattern) for pattern in EDITOR_FILES):
            return True
        if path == self.ssmfile or path == self.root:
            return False
        if any(_within(path, p) for p in self.never_read):
            return True
        if not _within(path, self.root):
            return any(part in ALWAYS_IGNORED for part in path.parts)
        return self.matcher.is_ignored(path.relative_to(self.root).as_posix(), is_dir)

    def affected(self, paths: Iterable[Path]) -> set[str]:
        """Selected tasks that read one of `paths` (or a directory holding one)."""
        paths = list(paths)
        return {
            name
            for name, reads in self.reads.items()
            if any(_within(p, r) or _within(r, p) for p in paths for r in reads)
        }

    def replans_all(self, path: Path) -> bool:
        return path == self.ssmfile or path.name in IGNORE_FILES

    def matters(self, path: Path) -> bool:
        return self.replans_all(path) or bool(self.affected([path]))

    def names(self, paths: Iterable[Path]) -> tuple[str, ...]:
        """Paths as the user writes them: relative to the root when inside it."""
        return tuple(
            p.relative_to(self.root).as_posix() if _within(p, self.root) else str(p) for p in paths
        )

    def watch_plan(self) -> dict[Path, bool]:
        """Directories to watch, each recursively or not: every save that matters is
        seen, and the store, outputs and .git are never watched (on Linux a recursive
        watch costs one inotify watch per directory below it)."""
        plan: dict[Path, bool] = {self.root: False, self.ssmfile.parent: False}
        for read in sorted({r for reads in self.reads.values() for r in reads}):
            top = read
            while not top.exists() and top.parent != top:
                top = top.parent  # its creation is seen there
            for parent in top.parents:
                if parent == self.root or not _within(parent, self.root):
                    break
                plan.setdefault(parent, False)
            if top == read and top.is_dir():
                self._expand(top, plan)
            else:
                plan.setdefault(top if top.is_dir() else top.parent, False)
        recursive = [d for d, r in plan.items() if r]
        return {
            d: r for d, r in plan.items() if not any(o != d and _within(d, o) for o in recursive)
        }

    def _expand(self, directory: Path, plan: dict[Path, bool]) -> None:
        if directory != self.root and not any(_within(p, directory) for p in self.never_read):
            plan[directory] = True
            return
        plan.setdefault(directory, False)
        try:
            children = sorted(directory.iterdir())
        except OSError:
            return
        for child in children:
            if child.is_dir() and not child.is_symlink() and not self.ignored(child, True):
                self._expand(child, plan)


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
        view: WatchView | None = None,
    ) -> None:
        self.root = root.resolve()
        self.ssmfile = ssmfile
        self.targets = tuple(targets)
        self.backend = backend
        self.on_busy = on_busy
        self.debounce = debounce
        self.jobs = jobs
        self.view = view if view is not None else make_view()
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
        self._observer: BaseObserver | None = None
        self._handler: FileSystemEventHandler | None = None
        self._watches: dict[Path, tuple[ObservedWatch, bool, tuple[int, int]]] = {}
        self._crash: BaseException | None = None
        self._stopping = threading.Event()

    # -- the outside ----------------------------------------------------------------

    def start(self) -> None:
        """Load the project (ConfigError if invalid), watch, and start the first build."""
        self._project = load_project(self.root, self.ssmfile)
        self._scope = Scope.of(self._project, self.targets)
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                watcher._on_fs_event(event)

        self._handler = Handler()
        self._observer = Observer()
        self._rewatch()
        self._observer.start()
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
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()

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
        """Watch what the scope needs now, including directories created or recreated
        since; stop watching the rest."""
        from watchdog.events import (
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileClosedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
        )

        # Not opens and reads: a build reads every file it hashes.
        kinds: list[type[FileSystemEvent]] = [
            FileCreatedEvent,
            FileModifiedEvent,
            FileClosedEvent,
            FileDeletedEvent,
            FileMovedEvent,
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
        ]
        assert self._scope is not None and self._observer is not None
        assert self._handler is not None
        plan = self._scope.watch_plan()
        for path, (old, recursive, was) in list(self._watches.items()):
            # A directory deleted (and maybe created again) lost its watch.
            if plan.get(path) != recursive or _identity(path) != was:
                self._observer.unschedule(old)
                del self._watches[path]
        for path, recursive in plan.items():
            identity = _identity(path)
            if path in self._watches or identity is None:
                continue
            try:
                watch = self._observer.schedule(
                    self._handler, str(path), recursive=recursive, event_filter=kinds
                )
            except OSError:
                continue  # gone meanwhile: the next batch looks again
            self._watches[path] = (watch, recursive, identity)

    def _on_fs_event(self, event: FileSystemEvent) -> None:
        scope = self._scope
        assert scope is not None
        for raw in (event.src_path, event.dest_path):
            if not raw:
                continue
            path = Path(os.fsdecode(raw))
            if scope.ignored(path, event.is_directory):
                continue
            # While the Ssmfile is broken, any save may fix it (a missing entry point).
            if self.config_error is not None or scope.matters(path):
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


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
