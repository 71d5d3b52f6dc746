"""`ssmake explain TASK`: every reason the task (each expansion of a matrix task)
would run again."""

from __future__ import annotations

import argparse

from ssmake.commands import common
from ssmake.errors import EXIT_OK
from ssmake.project.graph import resolve, summary


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    try:
        names = resolve(session.project, args.task)
        plans = {p.name: p for p in session.planner.plan(names)}
    finally:
        session.close()
    if len(names) > 1:
        states = [plans[n].state for n in names]
        print(f"{args.task}: {summary(states)}")
    for name in names:
        plan = plans[name]
        if plan.state == "up-to-date":
            print(f"{name} is up to date (job {plan.job}, fingerprint {plan.fingerprint})")
            continue
        print(f"{name} is {plan.state}:")
        for reason in plan.reasons:
            print(f"  - {reason}")
    return EXIT_OK
