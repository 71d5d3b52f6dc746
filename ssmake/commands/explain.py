"""`ssmake explain TASK`: every reason the task would run again."""

from __future__ import annotations

import argparse

from ssmake.commands import common
from ssmake.errors import EXIT_OK
from ssmake.project.graph import select


def run(args: argparse.Namespace) -> int:
    session = common.session(args)
    try:
        select(session.project, [args.task])
        plans = {p.name: p for p in session.planner.plan([args.task])}
    finally:
        session.close()
    plan = plans[args.task]
    if plan.state == "up-to-date":
        print(f"{args.task} is up to date (job {plan.job}, fingerprint {plan.fingerprint})")
        return EXIT_OK
    print(f"{args.task} is {plan.state}:")
    for reason in plan.reasons:
        print(f"  - {reason}")
    return EXIT_OK
