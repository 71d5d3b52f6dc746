"""`ssmake status`: every selected task, up to date or stale (and the first reason why)."""

from __future__ import annotations

import argparse
import json

from ssmake.commands import common
from ssmake.errors import EXIT_OK


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
    width = max(len(p.name) for p in plans)
    for p in plans:
        why = (
            f"  {p.reasons[0]}" + (f" (+{len(p.reasons) - 1} more)" if len(p.reasons) > 1 else "")
            if p.reasons
            else ""
        )
        job = f"  [{p.job}]" if p.job and p.state == "up-to-date" else ""
        print(f"{p.name:<{width}}  {p.state}{job}{why}")
    return EXIT_OK
