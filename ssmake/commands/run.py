"""`ssmake run` (the default): build the targets; with -n or --check, only print the plan."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ssmake.commands import common
from ssmake.commands.tasks_json import document, job_details, plan_entry
from ssmake.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ConfigError
from ssmake.plan.cost import Costing, Estimate, plan_estimates, total, usd
from ssmake.project.graph import select
from ssmake.ui.costs import estimates_json, table, total_line
from ssmake.ui.lines import human_size
from ssmake.ui.report import make_reporter

if TYPE_CHECKING:
    from ssmake.build.budget import Budget
    from ssmake.build.session import Session
    from ssmake.plan.planner import TaskPlan


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    try:
        if args.dry_run or args.check:
            return _plan(session, args)
        force = (args.targets or _all_selected(session, args)) if args.force else []
        budget = None if args.max_cost is None else _budget(session, args, force)
        reporter = make_reporter(verbosity=common.verbosity(args))
        engine = session.engine(reporter, jobs=args.jobs, keep_going=args.keep_going, budget=budget)
        try:
            result = engine.build(args.targets, force=force)
        finally:
            close = getattr(reporter, "close", None)
            if close is not None:
                close()
    finally:
        session.close()
    if args.json:
        entries = [
            {
                "name": o.task,
                "state": o.status,
                "reasons": o.reasons,
                "fingerprint": o.fingerprint,
                "job": o.job,
                "duration": round(o.duration, 3),
                "message": o.message,
                "billing": o.billing,
            }
            for o in result.outcomes
        ]
        print(json.dumps(document(session.project.name, entries), indent=2))
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    if result.interrupted:
        print(
            f"ssmake: interrupted ({summary}); no marker was written for unfinished tasks",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    refused = budget.refused if budget is not None else []
    if common.verbosity(args) >= 0 or result.failed or refused:
        print(f"ssmake: {summary}", file=sys.stderr)
    if refused:
        print(
            f"ssmake: stopped at --max-cost: {', '.join(refused)} not started "
            f"(spent {usd(budget.spent if budget else 0.0)})",
            file=sys.stderr,
        )
    return EXIT_FAILED if refused and not result.failed else result.exit_code


def _runs(plan: TaskPlan) -> bool:
    return plan.state == "stale" and not plan.restorable


def _all_selected(session: Session, args: argparse.Namespace) -> list[str]:
    return select(session.project, args.targets)


def _budget(session: Session, args: argparse.Namespace, force: list[str]) -> Budget:
    """The --max-cost budget of this build; refuses one whose estimate is above it."""
    from ssmake.build.budget import Budget

    plans = session.planner.plan(args.targets, force=force)
    costing = session.costing()
    estimates = plan_estimates(plans, session.planner, costing)
    _check_max_cost(estimates, costing, float(args.max_cost))
    return Budget(float(args.max_cost), estimates)


def _check_max_cost(estimates: dict[str, Estimate], costing: Costing, limit: float) -> None:
    amount, _, unknown = total(estimates.values())
    if unknown:
        raise ConfigError(
            f"cannot check --max-cost: no price for the instance type of {', '.join(unknown)} "
            f"in {costing.region}; add it to a [project] prices file, or drop --max-cost"
        )
    if amount > limit:
        lines = "\n".join(table(estimates, costing))
        raise ConfigError(
            f"the estimated cost, {usd(amount)}, is above --max-cost {usd(limit)}; nothing "
            f"was started. Raise the limit, build fewer targets, or lower max_run_mins:\n{lines}"
        )


def _plan(session: Session, args: argparse.Namespace) -> int:
    force = (args.targets or _all_selected(session, args)) if args.force else []
    plans = session.planner.plan(args.targets, force=force)
    costing = session.costing()
    estimates = {} if args.check else plan_estimates(plans, session.planner, costing)
    todo = {p.name: job_details(session, session.project.tasks[p.name]) for p in plans if _runs(p)}
    if args.max_cost is not None and not args.check:
        # `-n --max-cost` answers whether the build would be refused.
        _check_max_cost(estimates, costing, float(args.max_cost))
    if args.json:
        tasks = [
            {**plan_entry(p, session.planner.read_failure(p.name)), **todo.get(p.name, {})}
            for p in plans
        ]
        for entry in tasks:
            if entry["name"] in estimates:
                entry["estimate"] = estimates[entry["name"]].as_json()
        doc = document(session.project.name, tasks)
        doc["estimate"] = estimates_json(estimates, costing)
        print(json.dumps(doc, indent=2))
    elif args.check:
        for p in plans:
            if p.state != "up-to-date":
                print(f"{p.name}: {p.state}: {'; '.join(p.reasons)}", file=sys.stderr)
    else:
        on_sagemaker = costing.backend == "sagemaker"
        for p in plans:
            why = f" ({'; '.join(p.reasons)})" if p.reasons else ""
            print(f"{p.name}: {p.state}{why}")
            if on_sagemaker and p.name in estimates:
                print(f"    cost: {estimates[p.name].describe(costing.region)}")
            if p.name in todo:
                d = todo[p.name]
                print(
                    f"    would run on {d['backend']}: {d['instance_type']} x {d['instance_count']}"
                    f", image {d['image']}, uploading up to {human_size(d['upload_bytes'])}"
                )
        if on_sagemaker:
            print(total_line(estimates, costing))
    stale = any(p.state != "up-to-date" for p in plans)
    if args.check:
        return EXIT_FAILED if stale else EXIT_OK
    return EXIT_OK
