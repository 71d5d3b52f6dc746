"""`ssmake explain TASK`: every reason the task (each expansion of a matrix task)
would run again, and its last failed attempt when there is one."""

from __future__ import annotations

import argparse

from ssmake.build.failures import describe_failure
from ssmake.commands import common
from ssmake.errors import EXIT_OK
from ssmake.project.graph import resolve, summary


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    try:
        names = resolve(session.project, args.task)
        plans = {p.name: p for p in session.planner.plan(names)}
        failures = {n: session.planner.read_failure(n) for n in names}
    finally:
        session.close()
    if len(names) > 1:
        states = [plans[n].state for n in names]
        print(f"{args.task}: {summary(states)}")
    for name in names:
        plan, failure = plans[name], failures[name]
        if failure is not None:
            print(f"{name} failed on its last attempt: {describe_failure(name, failure)}")
            if failure.get("reason"):
                print(f"  {failure['reason']}")
            if failure.get("fingerprint") == plan.fingerprint:
                print("  nothing changed since: running it again repeats that attempt")
        if plan.state == "up-to-date":
            print(f"{name} is up to date (job {plan.job}, fingerprint {plan.fingerprint})")
            continue
        print(f"{name} is {plan.state}:")
        for reason in plan.reasons:
            print(f"  - {reason}")
    return EXIT_OK
