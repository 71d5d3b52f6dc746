"""Deciding what is stale: fingerprint each task and compare with its marker."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ssmake.errors import KeyNotFound
from ssmake.plan import layout, quick
from ssmake.plan.explain import explain_changes, own_changes
from ssmake.plan.fingerprint import SCHEMA_VERSION, Fingerprint, Fingerprinter
from ssmake.plan.records import failure_problem, inflight_problem, marker_problem
from ssmake.plan.statdigest import StatDigest, StatDigests, marker_hash
from ssmake.project.graph import select
from ssmake.project.matrix import group_of
from ssmake.project.model import Project, Task

if TYPE_CHECKING:  # the planner reads the store it is handed; it opens none
    from ssmake.stores import Store

Marker = dict[str, Any]


@dataclass
class TaskPlan:
    """One task's verdict: up-to-date, stale, running or blocked, and why."""

    name: str
    state: str
    reasons: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    job: str | None = None
    restorable: bool = False
    # An expansion's matrix values.
    matrix: dict[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "state": self.state,
            "reasons": self.reasons,
            "fingerprint": self.fingerprint,
            "job": self.job,
        }
        if self.matrix:
            doc["matrix"] = self.matrix
        return doc


class Planner:
    """Reads markers and run records from the store and fingerprints tasks."""

    def __init__(
        self,
        project: Project,
        store: Store,
        fingerprinter: Fingerprinter,
        digests: StatDigests | None = None,
        *,
        holder_alive: Callable[[Marker], bool] = lambda record: True,
    ) -> None:
        self.project = project
        #: Whether the ssmake process (or the detached job) an in-flight record names
        #: may still run: only then is its task shown running.
        self.holder_alive = holder_alive
        #: Told of each damaged record met (once per key); the engine reports it.
        self.on_damaged: Callable[[str], None] = lambda message: None
        self.damaged: dict[str, str] = {}
        self.store = store
        self.fingerprinter = fingerprinter
        self.digests = digests
        self._lock = threading.Lock()
        # Tasks judged up to date with a settled stat digest: what a snapshot needs.
        self._settled: dict[str, tuple[StatDigest, Marker]] = {}

    def _read_raw(self, key: str) -> bytes | None:
        try:
            return self.store.get(key)
        except KeyNotFound:
            return None

    def _read_json(
        self, key: str, problem: Callable[[Any], str | None] = marker_problem
    ) -> Marker | None:
        raw = self._read_raw(key)
        return None if raw is None else self._parse(key, raw, problem)

    def _parse(
        self, key: str, raw: bytes, problem: Callable[[Any], str | None] = marker_problem
    ) -> Marker | None:
        """The record in `raw`, or None when it is damaged: then it is as if absent (the
        task runs again and rewrites it), and `on_damaged` hears of it once."""
        wrong: str | None = "not JSON"
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        else:
            wrong = problem(doc)
        if wrong is None:
            record: Marker = doc
            return record
        with self._lock:
            first = key not in self.damaged
            self.damaged[key] = wrong
        if first:
            self.on_damaged(f"ignoring the damaged record {key} ({wrong}); it will be replaced")
        return None

    def read_marker(self, task: str) -> Marker | None:
        return self._read_json(layout.marker_key(self.project.name, task))

    def read_run_record(self, task: str, fingerprint: str) -> Marker | None:
        record = self._read_json(layout.run_record_key(self.project.name, task, fingerprint))
        if record is None or record.get("fingerprint") != fingerprint:
            return None
        return record

    def read_failure(self, task: str) -> Marker | None:
        """The task's last failed attempt (job, reason, exit code, time), if it came
        after the marker: a success removes it."""
        return self._read_json(layout.failure_key(self.project.name, task), failure_problem)

    def read_inflight(self, task: str) -> Marker | None:
        return self._read_json(layout.inflight_key(self.project.name, task), inflight_problem)

    def fingerprint(self, task: Task, upstream: Mapping[str, Marker | None]) -> Fingerprint:
        known = {name: m for name, m in upstream.items() if m is not None}
        with self._lock:
            return self.fingerprinter.fingerprint(task, known)

    def forget(self) -> None:
        """Make the next verdicts look at the files afresh (see Fingerprinter.forget)."""
        with self._lock:
            self.fingerprinter.forget()

    def state_consumed(self, task: str) -> bool:
        """Whether a task of the project reads `task`'s state as an input."""
        return any(
            inp.task == task and inp.output == "state"
            for t in self.project.tasks.values()
            for inp in t.inputs
        )

    def state_listing(self, task: str) -> dict[str, list[Any]]:
        """The state `task`'s jobs leave, as stored: relative key -> [size, ETag]."""
        prefix = layout.state_prefix(self.project.name, task)
        return {o.key[len(prefix) :]: [o.size, o.etag] for o in self.store.list(prefix)}

    def result_problem(self, task: str, marker: Marker) -> str | None:
        """Why a marker or run record is not a result, or None when it is one: its
        outputs must be in the store with the recorded size and ETag, and the state
        its downstream reads must be the state it left."""
        outputs = marker.get("outputs")
        if not isinstance(outputs, dict) or not outputs:
            return "it records no outputs"
        for kind, out in sorted(outputs.items()):
            key = out.get("key") if isinstance(out, dict) else None
            info = self.store.info(key) if isinstance(key, str) else None
            if info is None:
                return f"its {kind} is missing from the store"
            if [info.size, info.etag] != [out.get("size"), out.get("etag")]:
                return f"its {kind} in the store is not the one it recorded (size or ETag differs)"
        if self.state_consumed(task) and marker.get("state") != self.state_listing(task):
            return "its state was overwritten by another run since"
        return None

    def judge(
        self,
        task: Task,
        upstream: Mapping[str, Marker | None],
        *,
        forced: bool,
    ) -> tuple[TaskPlan, Fingerprint, Marker | None]:
        """The verdict for one task whose upstream markers are final."""
        raw = self._read_raw(layout.marker_key(self.project.name, task.name))
        stat: StatDigest | None = None
        if self.digests is not None and raw is not None and not forced:
            known = {name: m for name, m in upstream.items() if m is not None}
            with self._lock:
                stat = self.fingerprinter.stat_digest(task, known)
            record = self.digests.get(task.name, stat.value, marker_hash(raw))
            if record is not None:
                verdict = self._judge_recorded(task, upstream, record)
                if verdict[0].state == "up-to-date":
                    self._settled[task.name] = (stat, record)
                return verdict
        fp = self.fingerprint(task, upstream)
        key = layout.marker_key(self.project.name, task.name)
        marker = None if raw is None else self._parse(key, raw)
        plan = TaskPlan(task.name, "stale", fingerprint=fp.value)
        if marker is not None:
            plan.job = marker.get("job")
        if forced:
            plan.reasons = ["forced (-B)"]
            return plan, fp, marker
        current = marker is not None and marker.get("schema") == SCHEMA_VERSION
        if marker is not None and current and marker.get("fingerprint") == fp.value:
            problem = self.result_problem(task.name, marker)
            if problem is None:
                plan.state = "up-to-date"
                if (
                    stat is not None
                    and stat.settled
                    and raw is not None
                    and self.digests is not None
                ):
                    record = {
                        "stat": stat.value,
                        "marker": marker_hash(raw),
                        "fingerprint": fp.value,
                        "job": marker.get("job"),
                        "outputs": marker.get("outputs") or {},
                        "state": marker.get("state"),
                    }
                    self.digests.put(task.name, record)
                    self._settled[task.name] = (stat, record)
                return plan, fp, marker
            plan.reasons = [f"the last run is not a result: {problem}"]
            return plan, fp, marker
        old = marker.get("components") if marker is not None else None
        if marker is not None and not current:
            plan.reasons = ["marker written by an older ssmake (fingerprint schema changed)"]
        else:
            plan.reasons = explain_changes(old, fp.components) or ["fingerprint changed"]
        record = self.read_run_record(task.name, fp.value)
        if record is not None:
            problem = self.result_problem(task.name, record)
            if problem is None:
                plan.restorable = True
                plan.reasons.append(
                    f"an earlier run matches ({record.get('job')}): will restore it"
                )
            else:
                plan.reasons.append(
                    f"an earlier run matches ({record.get('job')}) but is ignored: {problem}"
                )
        return plan, fp, marker

    def own_reasons(self, task: Task) -> list[str]:
        """What changed in a task itself, whatever its upstream tasks will produce: its
        reasons beside "upstream X will run first"."""
        marker = self.read_marker(task.name)
        old = marker.get("components") if marker is not None else None
        if not isinstance(old, dict) or old.get("schema") != SCHEMA_VERSION:
            return []
        return own_changes(old, self.fingerprint(task, {}).components)

    def _judge_recorded(
        self, task: Task, upstream: Mapping[str, Marker | None], record: Marker
    ) -> tuple[TaskPlan, Fingerprint, Marker | None]:
        """The verdict when the stat digest and the marker are those of a record: the
        fingerprint is the marker's, so only the outputs are left to check."""
        marker: Marker = {
            "schema": SCHEMA_VERSION,
            "fingerprint": record["fingerprint"],
            "job": record.get("job"),
            "outputs": record.get("outputs") or {},
            "state": record.get("state"),
        }
        fp = Fingerprint(
            record["fingerprint"], compute=lambda: self.fingerprint(task, upstream).components
        )
        plan = TaskPlan(task.name, "up-to-date", fingerprint=fp.value, job=marker["job"])
        problem = self.result_problem(task.name, marker)
        if problem is not None:
            plan.state = "stale"
            plan.reasons = [f"the last run is not a result: {problem}"]
        return plan, fp, marker

    def plan(self, targets: Collection[str], force: Collection[str] = ()) -> list[TaskPlan]:
        """A dry-run verdict for the targets and what they need, upstream first."""
        names = select(self.project, list(targets))
        plans: dict[str, TaskPlan] = {}
        future_markers: dict[str, Marker | None] = {}
        for name in self.project.external:
            # Run before, elsewhere: its marker in the store is its result.
            future_markers[name] = marker = self.read_marker(name)
            plans[name] = (
                TaskPlan(name, "up-to-date", fingerprint=marker.get("fingerprint"))
                if marker is not None
                else TaskPlan(name, "blocked", ["has no completed run in the store"])
            )
        for name in names:
            task = self.project.tasks[name]
            waiting = [
                u
                for u in task.upstream()
                if plans[u].state in ("stale", "blocked", "running") and not plans[u].restorable
            ]
            if waiting:
                state = "blocked" if any(plans[u].state == "blocked" for u in waiting) else "stale"
                reasons = [
                    f"upstream {u} {plans[u].reasons[0]}"
                    for u in waiting
                    if u in self.project.external
                ]
                reasons += _will_run_first([u for u in waiting if u not in self.project.external])
                plans[name] = TaskPlan(name, state, reasons + self.own_reasons(task))
                future_markers[name] = None
                continue
            upstream = {u: future_markers.get(u) for u in task.upstream()}
            plan, fp, marker = self.judge(task, upstream, forced=name in force)
            inflight = self.read_inflight(name)
            if (
                plan.state == "stale"
                and inflight is not None
                and inflight.get("fingerprint") == fp.value
            ):
                if self.holder_alive(inflight):
                    plan.state = "running"
                    plan.job = inflight.get("job")
                    plan.reasons = [f"job {plan.job} is running"]
                else:
                    plan.reasons.insert(
                        0,
                        f"job {inflight.get('job')} was abandoned (its ssmake process died); "
                        "the next run takes it over",
                    )
            plans[name] = plan
            if plan.state == "up-to-date":
                future_markers[name] = marker
            elif plan.restorable:
                future_markers[name] = self.read_run_record(name, fp.value)
            else:
                future_markers[name] = None
        for name in names:
            plans[name].matrix = self.project.tasks[name].matrix
        if not targets and not force and all(p.state == "up-to-date" for p in plans.values()):
            self._snapshot(names)
        return [plans[n] for n in names]

    def _snapshot(self, names: list[str]) -> None:
        """Record what `ssmake --check` may answer from without loading the project
        (plan/quick.py), when every task's verdict came with a settled stat digest."""
        project = self.project
        if self.digests is None or project.ssmfile_sha256 is None or project.external:
            return
        tasks = []
        for name in names:
            settled = self._settled.get(name)
            if settled is None:
                return
            stat, record = settled
            keys = [layout.marker_key(project.name, name)]
            keys += [o["key"] for o in record["outputs"].values()]
            uris = [self.store.uri(k) for k in keys]
            if not all(u.startswith("file://") for u in uris):
                return
            paths = [u.removeprefix("file://") for u in uris]
            # Each output with the ETag it was recorded with (a local store's: its
            # mtime and size), so that a replaced output is not trusted.
            etags = [str(o.get("etag")) for o in record["outputs"].values()]
            tasks.append(
                {
                    "name": name,
                    "skeleton": stat.skeleton.decode(),
                    "walks": stat.walks,
                    "stat": stat.value,
                    "files": stat.files,
                    "marker": paths[0],
                    "marker_sha256": record["marker"],
                    "outputs": [list(pair) for pair in zip(paths[1:], etags, strict=True)],
                }
            )
        root = str(self.fingerprinter.root)
        self.digests.snapshot(
            {
                "version": quick.VERSION,
                "root": root,
                "ssmfile": str(project.ssmfile),
                "ssmfile_sha256": project.ssmfile_sha256,
                "exclude": sorted(self.fingerprinter.excluded),
                "tasks": tasks,
            },
            quick.snapshot_path(root),
        )


def _will_run_first(names: list[str]) -> list[str]:
    """`upstream prepare will run first`; several expansions of one matrix task in one
    reason: `upstream train: 4 expansions will run first`."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(group_of(name), []).append(name)
    reasons = []
    for group, members in groups.items():
        if len(members) == 1:
            reasons.append(f"upstream {members[0]} will run first")
        else:
            reasons.append(f"upstream {group}: {len(members)} expansions will run first")
    return reasons
