"""`ssmake status`: every selected task, up to date, stale (and the first reason why)
or failed on its last attempt (`job train-3f2a-2, exit 1, 4 min ago`); with --cost,
what the current results cost and what a rebuild of the stale ones would."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ssmake.build.failures import describe_failure
from ssmake.commands import common
from ssmake.commands.tasks_json import document, plan_entry
from ssmake.errors import EXIT_OK
from ssmake.plan.cost import Costing, Estimate, plan_estimates, usd
from ssmake.project.graph import grouped, summary
from ssmake.ui.costs import estimates_json, total_line

if TYPE_CHECKING:
    from ssmake.build.session import Session
    from ssmake.plan.planner import Marker, TaskPlan


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    session.planner.on_damaged = lambda message: print(f"ssmake: {message}", file=sys.stderr)
    try:
        plans = session.planner.plan(args.targets)
        costs = _costs(session, plans) if getattr(args, "cost", False) else None
        failures = {p.name: session.planner.read_failure(p.name) for p in plans}
    finally:
        session.close()
    if args.json:
        entries = [plan_entry(p, failures[p.name]) for p in plans]
        doc: dict[str, Any] = document(session.project.name, entries)
        if costs is not None:
            doc["cost"] = costs.as_json()
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    by_name = {p.name: p for p in plans}
    width = max(len(p.name) + (2 if p.matrix else 0) for p in plans)
    for group, names in grouped(session.project, [p.name for p in plans]).items():
        if names == [group]:
            print(_line(by_name[group], failures[group], width))
            continue
        states = [_state(by_name[n], failures[n]) for n in names]
        print(f"{group:<{width}}  {summary(states)}")
        for name in names:
            print("  " + _line(by_name[name], failures[name], width - 2))
    if costs is not None:
        print(costs.current_line())
        print("rebuilding the stale tasks: " + total_line(costs.estimates, costs.costing))
    return EXIT_OK


@dataclass
class _Costs:
    """What the up-to-date results cost (each task's last bill), and what the stale
    tasks would cost to rebuild."""

    costing: Costing
    billed: dict[str, float]
    unbilled: list[str]
    estimates: dict[str, Estimate]

    def current_line(self) -> str:
        jobs = len(self.billed)
        line = f"cost of the current results: {usd(sum(self.billed.values()))} for {jobs} job"
        line += "" if jobs == 1 else "s"
        if self.unbilled:
            line += f" ({len(self.unbilled)} more without a recorded bill)"
        return line

    def as_json(self) -> dict[str, Any]:
        return {
            "current_usd": round(sum(self.billed.values()), 4),
            "current": {name: round(cost, 4) for name, cost in self.billed.items()},
            "unbilled": self.unbilled,
            "rebuild": estimates_json(self.estimates, self.costing),
            "rebuild_tasks": {name: e.as_json() for name, e in self.estimates.items()},
        }


def _costs(session: Session, plans: list[TaskPlan]) -> _Costs:
    costing = session.costing()
    billed: dict[str, float] = {}
    unbilled: list[str] = []
    for p in plans:
        if p.state != "up-to-date":
            continue
        cost = ((session.planner.read_marker(p.name) or {}).get("billing") or {}).get("usd")
        if isinstance(cost, int | float):
            billed[p.name] = float(cost)
        else:
            unbilled.append(p.name)
    estimates = plan_estimates(plans, session.planner, costing)
    return _Costs(costing, billed, unbilled, estimates)


def _state(p: TaskPlan, failure: Marker | None) -> str:
    # Nothing changed since its last attempt failed: that failure is the news.
    unchanged = failure is not None and failure.get("fingerprint") == p.fingerprint
    return "failed" if unchanged and p.state == "stale" else p.state


def _line(p: TaskPlan, failure: Marker | None, width: int) -> str:
    if failure is not None and _state(p, failure) == "failed":
        return f"{p.name:<{width}}  failed      {describe_failure(p.name, failure)}"
    why = (
        f"  {p.reasons[0]}" + (f" (+{len(p.reasons) - 1} more)" if len(p.reasons) > 1 else "")
        if p.reasons
        else ""
    )
    job = f"  [{p.job}]" if p.job and p.state == "up-to-date" else ""
    last = f"; last attempt failed: {describe_failure(p.name, failure)}" if failure else ""
    return f"{p.name:<{width}}  {p.state}{job}{why}{last}"
