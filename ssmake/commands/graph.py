"""`ssmake graph`: the task graph as text, Graphviz dot or Mermaid."""

from __future__ import annotations

import argparse

from ssmake.commands import common
from ssmake.errors import EXIT_OK
from ssmake.project.graph import order


def run(args: argparse.Namespace) -> int:
    project = common.load(args)
    names = order(project)
    edges = [(u, n) for n in names for u in project.tasks[n].upstream()]
    if args.format == "dot":
        print(f'digraph "{project.name}" {{')
        for n in names:
            print(f'  "{n}";')
        for u, n in edges:
            print(f'  "{u}" -> "{n}";')
        print("}")
    elif args.format == "mermaid":
        print("graph TD")
        for n in names:
            print(f"  {n.replace('-', '_')}[{n}]")
        for u, n in edges:
            print(f"  {u.replace('-', '_')} --> {n.replace('-', '_')}")
    else:
        for n in names:
            ups = project.tasks[n].upstream()
            print(f"{n}" + (f" <- {', '.join(ups)}" if ups else ""))
    return EXIT_OK
