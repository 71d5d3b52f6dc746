"""`ssmake status`: every selected task, up to date or stale (and the first reason why)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ssmake.commands import common
from ssmake.errors import EXIT_OK
from ssmake.project.graph import grouped, summary

if TYPE_CHECKING:
    from ssmake.plan.planner import TaskPlan


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    try:
        plans = session.planner.plan(args.targets)
    finally:
        session.close()
    if args.json:
        doc = {"project": session.project.name, "tasks": [p.as_json() for p in plans]}
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    by_name = {p.name: p for p in plans}
    width = max(len(p.name) + (2 if p.matrix else 0) for p in plans)
    for group, names in grouped(session.project, [p.name for p in plans]).items():
        if names == [group]:
            print(_line(by_name[group], width))
            continue
        states = [by_name[n].state for n in names]
        print(f"{group:<{width}}  {summary(states)}")
        for name in names:
            print("  " + _line(by_name[name], width - 2))
    return EXIT_OK


def _line(p: TaskPlan, width: int) -> str:
    why = (
        f"  {p.reasons[0]}" + (f" (+{len(p.reasons) - 1} more)" if len(p.reasons) > 1 else "")
        if p.reasons
        else ""
    )
    job = f"  [{p.job}]" if p.job and p.state == "up-to-date" else ""
    return f"{p.name:<{width}}  {p.state}{job}{why}"
