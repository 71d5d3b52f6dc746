"""The build: plan, then run stale tasks upstream first, up to -j at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ssmake.backends import Backend
from ssmake.build.budget import Budget
from ssmake.build.inflight import Retry
from ssmake.build.runner import TaskRunner
from ssmake.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    SsmakeError,
    TaskCancelled,
    TaskFailed,
)
from ssmake.events import (
    BuildStarted,
    BuildStopping,
    Notice,
    Reporter,
    TaskBlocked,
    TaskDone,
    TaskFailedEvent,
    TaskQueued,
    TaskStarted,
    TaskUpToDate,
)
from ssmake.plan.cost import describe_bill
from ssmake.plan.planner import Marker, Planner
from ssmake.plan.snapshot import ChangedWhileStaging
from ssmake.project.graph import select
from ssmake.project.model import Project


@dataclass
class Outcome:
    """How one task ended in a build."""

    task: str
    # up-to-date | restored | done | failed | cancelled | blocked | skipped | interrupted
    status: str
    fingerprint: str | None = None
    job: str | None = None
    duration: float = 0.0
    reasons: list[str] = field(default_factory=list)
    message: str = ""
    # What the job cost (a done task's marker's "billing").
    billing: dict[str, Any] | None = None
    #: A failed task's exit code: 2 when the failure is the user's setup to fix
    #: (credentials, configuration), else 1.
    exit_code: int = EXIT_FAILED


@dataclass
class BuildResult:
    outcomes: list[Outcome]
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        return any(o.status in ("failed", "cancelled", "blocked") for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0, else the highest exit code of the failures (2: the setup is at fault)."""
        failures = [o for o in self.outcomes if o.status in ("failed", "cancelled", "blocked")]
        return max((o.exit_code for o in failures), default=EXIT_OK)


class Engine:
    """Builds targets of a project with a store, a backend and a reporter."""

    def __init__(
        self,
        project: Project,
        planner: Planner,
        runner: TaskRunner,
        backend: Backend,
        reporter: Reporter,
        *,
        jobs: int = 1,
        keep_going: bool = False,
        budget: Budget | None = None,
    ) -> None:
        self.project = project
        self.planner = planner
        self.runner = runner
        self.backend = backend
        self.report = reporter
        self.jobs = max(1, jobs)
        self.keep_going = keep_going
        self.budget = budget
        self.interrupt = threading.Event()
        planner.on_damaged = lambda message: reporter(Notice(message))

    def build(self, targets: Collection[str], force: Collection[str] = ()) -> BuildResult:
        names = select(self.project, list(targets))
        markers: dict[str, Marker | None] = {}
        outcomes: dict[str, Outcome] = {}
        pending = list(names)
        running: dict[Future[Outcome], str] = {}
        stop_launching = False
        interrupted = False
        for name in self.project.external:
            # Run before, elsewhere: its marker in the store is its result.
            markers[name] = marker = self.planner.read_marker(name)
            outcomes[name] = (
                Outcome(name, "up-to-date", marker.get("fingerprint"), marker.get("job"))
                if marker is not None
                else Outcome(name, "blocked", message="no completed run in the store")
            )
        self.report(BuildStarted(tuple(names)))
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="task") as pool:
            try:
                while pending or running:
                    for name in list(pending):
                        if len(running) >= self.jobs:
                            break
                        ups = self.project.tasks[name].upstream()
                        if any(u not in outcomes for u in ups):
                            continue
                        pending.remove(name)
                        if self.interrupt.is_set():
                            # Set from another thread (watch's restart): launch nothing new.
                            outcomes[name] = Outcome(name, "skipped", message="interrupted")
                            continue
                        bad = [u for u in ups if outcomes[u].status in _UNUSABLE]
                        if bad or stop_launching:
                            why = (
                                f"upstream {', '.join(bad)} did not complete"
                                if bad
                                else "not started: an earlier task failed (use -k to go on)"
                            )
                            status = "blocked" if bad else "skipped"
                            outcomes[name] = Outcome(name, status, message=why)
                            self.report(TaskBlocked(name, why))
                            continue
                        refused = self.budget.admit(name) if self.budget is not None else None
                        if refused is not None:
                            outcomes[name] = Outcome(name, "skipped", message=refused)
                            self.report(TaskBlocked(name, refused))
                            continue
                        upstream = {u: markers.get(u) for u in ups}
                        future = pool.submit(self._run_task, name, upstream, name in force)
                        running[future] = name
                    if not running:
                        continue
                    done, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in done:
                        name = running.pop(future)
                        outcome, markers[name] = self._settle(future.result())
                        outcomes[name] = outcome
                        if self.budget is not None:
                            ran = outcome.status in ("done", "failed")
                            self.budget.settle(name, ran, markers[name])
                        if outcome.status == "failed" and not self.keep_going:
                            stop_launching = True
                        if outcome.status == "interrupted":
                            interrupted = True
            except KeyboardInterrupt:
                interrupted = True
                self.interrupt.set()
                self.report(BuildStopping())
                self._drain(running, outcomes)
        for name in names:
            outcomes.setdefault(name, Outcome(name, "skipped", message="not started"))
        return BuildResult([outcomes[n] for n in names], interrupted or self.interrupt.is_set())

    def _settle(self, outcome: Outcome) -> tuple[Outcome, Marker | None]:
        """A finished task's outcome and the marker its downstream tasks build on. A
        completed task whose marker cannot be read back (the store went away
        meanwhile) failed: said once, as that task's failure, not as the build's."""
        if outcome.status not in _USABLE:
            return outcome, None
        try:
            return outcome, self.planner.read_marker(outcome.task)
        except SsmakeError as e:
            self.report(TaskFailedEvent(outcome.task, outcome.job, e.message))
            failed = Outcome(outcome.task, "failed", outcome.fingerprint, outcome.job)
            failed.message, failed.exit_code = e.message, _exit_code(e)
            return failed, None

    def _drain(self, running: dict[Future[Outcome], str], outcomes: dict[str, Outcome]) -> None:
        """Wait for the running tasks to stop after an interrupt, saying what is done
        meanwhile; another interrupt, wherever it strikes, kills their jobs at once."""
        names = ", ".join(sorted(running.values()))
        announce = bool(running) and not self.backend.detaches
        kill = False
        while running:
            try:
                if announce:
                    announce = False
                    grace = f"{self.backend.grace_seconds:g}"
                    again = "Ctrl-C again to kill now"
                    self.report(
                        Notice(f"stopping {names}: SIGTERM sent, SIGKILL in {grace} s; {again}")
                    )
                if kill:
                    kill = False
                    self.backend.kill()
                    self.report(Notice(f"killing {names}: SIGKILL sent"))
                done, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running[future]
                    try:
                        outcomes[name] = future.result()
                    except BaseException:
                        outcomes[name] = Outcome(name, "interrupted")
                    del running[future]
            except KeyboardInterrupt:
                kill = True

    def _run_task(self, name: str, upstream: dict[str, Marker | None], forced: bool) -> Outcome:
        task = self.project.tasks[name]
        started = time.monotonic()
        replans = 0
        while True:
            try:
                plan, fp, marker = self.planner.judge(task, upstream, forced=forced)
                if plan.state == "up-to-date" and marker is not None:
                    self.report(TaskUpToDate(name, plan.job))
                    self.runner.download(task, marker)
                    return Outcome(name, "up-to-date", fp.value, plan.job)
                if plan.restorable:
                    record = self.runner.restore(task, fp)
                    self.runner.download(task, record)
                    return Outcome(name, "restored", fp.value, record.get("job"), 0.0, plan.reasons)
                self.report(TaskQueued(name, tuple(plan.reasons)))
                self.report(TaskStarted(name, tuple(plan.reasons)))
                try:
                    new_marker = self.runner.run(task, fp, upstream, self.interrupt)
                finally:
                    # A job ran (or was waited for): files may have changed meanwhile.
                    self.planner.forget()
                duration = time.monotonic() - started
                job = str(new_marker["job"])
                billing = new_marker.get("billing")
                cost = describe_bill(billing) if billing else ""
                self.report(TaskDone(name, job, duration, cost))
                return Outcome(name, "done", fp.value, job, duration, plan.reasons, billing=billing)
            except Retry:
                forced = False
                continue
            except ChangedWhileStaging as e:
                # Nothing was recorded for it: plan the task again from the files as
                # they are now (a file that keeps changing fails the task).
                replans += 1
                if replans > _REPLANS:
                    self.report(TaskFailedEvent(name, None, e.message))
                    return Outcome(name, "failed", message=e.message)
                self.report(Notice(f"{e.entry.shown} changed while staging; planning again", name))
                continue
            except KeyboardInterrupt:
                return Outcome(name, "interrupted", message="interrupted")
            except TaskCancelled as e:
                self.report(Notice(e.message, name))
                return Outcome(name, "cancelled", message=e.message)
            except TaskFailed as e:
                self.report(TaskFailedEvent(name, e.job, e.message, e.log_tail))
                tail = "".join(f"\n  | {line}" for line in e.log_tail)
                return Outcome(name, "failed", job=e.job, message=e.message + tail)
            except SsmakeError as e:
                self.report(TaskFailedEvent(name, None, e.message))
                return Outcome(name, "failed", message=e.message, exit_code=_exit_code(e))
            except OSError as e:
                # Not translated where it arose (the run directory, the work dir): still
                # this task's failure, said plainly, not a crash of the build.
                where = f"{e.filename}: " if e.filename else ""
                message = f"task {name}: {where}{e.strerror or e}"
                self.report(TaskFailedEvent(name, None, message))
                return Outcome(name, "failed", message=message)


# How many times a task is planned again when its files change while it is staged.
_REPLANS = 2
_UNUSABLE = ("failed", "cancelled", "blocked", "skipped", "interrupted")
_USABLE = ("up-to-date", "restored", "done")


def _exit_code(error: SsmakeError) -> int:
    """A failed task's code: 2 when the user's environment is at fault (credentials,
    profile, region), else 1."""
    return EXIT_USAGE if error.setup else EXIT_FAILED
