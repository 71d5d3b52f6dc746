"""`ssmake graph`: the task graph as text, Graphviz dot (or svg/png rendered by dot)
or Mermaid; tasks coloured by state, edges labelled with what flows along them."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from ssmake.commands import common
from ssmake.errors import EXIT_OK, SsmakeError
from ssmake.project.graph import order
from ssmake.project.model import Project

# Graphviz colours of a task's state (fill, border).
_DOT_COLOURS = {
    "up-to-date": ("#d9f2d9", "#2e7d32"),
    "stale": ("#fff3cd", "#b8860b"),
    "running": ("#cfe2ff", "#1f5fbf"),
    "blocked": ("#f8d7da", "#b02a37"),
    "failed": ("#f8d7da", "#b02a37"),
}
_TEXT_STYLES = {"up-to-date": "green", "stale": "yellow", "running": "blue", "blocked": "red"}
_INSTALL_DOT = (
    "graphviz's `dot` is not installed: install graphviz (apt install graphviz, "
    "brew install graphviz, conda install graphviz), or use --format dot and render it elsewhere"
)


def edges(project: Project, names: list[str]) -> list[tuple[str, str, str]]:
    """(upstream, task, what flows) for every dependency: model, output, state, after."""
    found = []
    for n in names:
        task = project.tasks[n]
        for u in task.upstream():
            kinds: list[str] = [i.output for i in task.inputs if i.task == u]
            kinds += ["after"] if u in task.after else []
            found.append((u, n, ", ".join(dict.fromkeys(kinds))))
    return found


def _states(args: argparse.Namespace, project: Project) -> dict[str, str]:
    from ssmake.build.session import open_session

    try:
        session = open_session(project, backend=args.backend)
    except SsmakeError as e:
        print(f"ssmake: graph without states: {e.message}", file=sys.stderr)
        return {}
    try:
        return {p.name: p.state for p in session.planner.plan(list(project.tasks))}
    finally:
        session.close()


def dot(project: Project, names: list[str], states: dict[str, str]) -> str:
    lines = [
        f'digraph "{project.name}" {{',
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled"];',
    ]
    for n in names:
        state = states.get(n)
        fill, border = _DOT_COLOURS.get(state or "", ("white", "black"))
        label = f"{n}\\n{state}" if state else n
        lines.append(f'  "{n}" [label="{label}", fillcolor="{fill}", color="{border}"];')
    for u, n, what in edges(project, names):
        lines.append(f'  "{u}" -> "{n}" [label="{what}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _render(text: str, fmt: str, out: Path) -> None:
    binary = shutil.which("dot")
    if binary is None:
        raise SsmakeError(f"cannot render --format {fmt}: {_INSTALL_DOT}")
    done = subprocess.run(
        [binary, f"-T{fmt}", "-o", str(out)], input=text.encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        raise SsmakeError(f"dot could not render the graph: {done.stderr.decode().strip()}")


def run(args: argparse.Namespace) -> int:
    project = common.load(args)
    names = order(project)
    if args.format == "names":
        print("\n".join(names))
        return EXIT_OK
    states = _states(args, project)
    if args.format in ("dot", "svg", "png"):
        text = dot(project, names, states)
        if args.format == "dot":
            print(text, end="")
            return EXIT_OK
        out = Path(args.output or f"graph.{args.format}")
        _render(text, args.format, out)
        print(f"ssmake: wrote {out}", file=sys.stderr)
    elif args.format == "mermaid":
        print("graph TD")
        for n in names:
            state = f"<br/>{states[n]}" if n in states else ""
            print(f"  {_mermaid_id(n)}[{n}{state}]")
        for u, n, what in edges(project, names):
            print(f"  {_mermaid_id(u)} -->|{what}| {_mermaid_id(n)}")
    else:
        _text(project, names, states)
    return EXIT_OK


def _mermaid_id(name: str) -> str:
    return name.replace("-", "_")


def _text(project: Project, names: list[str], states: dict[str, str]) -> None:
    from rich.text import Text

    from ssmake.ui.console import console

    out = console(sys.stdout)
    flows = {(u, n): what for u, n, what in edges(project, names)}
    width = max(len(n) for n in names)
    for n in names:
        state = states.get(n, "")
        ups = ", ".join(f"{u} ({flows[u, n]})" for u in project.tasks[n].upstream())
        line = Text(f"{n:<{width}}  ")
        line.append(f"{state:<10}" if ups else state, style=_TEXT_STYLES.get(state, ""))
        line.append(f"  <- {ups}" if ups else "")
        line.rstrip()
        out.print(line)
