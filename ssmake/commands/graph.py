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
from ssmake.project.graph import grouped, order
from ssmake.project.matrix import slug
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
            kinds: list[str] = [i.output for i in task.inputs if i.task == u or u in i.gather]
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
    for group, members in grouped(project, names).items():
        indent = "  " if members == [group] else "    "
        if members != [group]:
            # A matrix task's expansions in a box named by the task.
            lines.append(f'  subgraph "cluster_{group}" {{')
            lines.append(f'    label="{group}: {len(members)} expansions";')
        for n in members:
            state = states.get(n)
            fill, border = _DOT_COLOURS.get(state or "", ("white", "black"))
            label = f"{n}\\n{state}" if state else n
            lines.append(f'{indent}"{n}" [label="{label}", fillcolor="{fill}", color="{border}"];')
        if members != [group]:
            lines.append("  }")
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
        # A matrix task's name builds all its expansions: it is a target too.
        print("\n".join(dict.fromkeys([*grouped(project, names), *names])))
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
        for group, members in grouped(project, names).items():
            if members != [group]:
                print(f'  subgraph {_mermaid_id(group)}["{group}: {len(members)} expansions"]')
            for n in members:
                state = f"<br/>{states[n]}" if n in states else ""
                label = f'"{n}{state}"' if n != group else f"{n}{state}"
                print(f"  {_mermaid_id(n)}[{label}]")
            if members != [group]:
                print("  end")
        for u, n, what in edges(project, names):
            print(f"  {_mermaid_id(u)} -->|{what}| {_mermaid_id(n)}")
    else:
        _text(project, names, states)
    return EXIT_OK


def _mermaid_id(name: str) -> str:
    return slug(name).replace("-", "_")


def _text(project: Project, names: list[str], states: dict[str, str]) -> None:
    from rich.text import Text

    from ssmake.ui.console import console

    out = console(sys.stdout)
    flows = {(u, n): what for u, n, what in edges(project, names)}
    groups = grouped(project, names)
    width = max(len(n) + (2 if project.tasks[n].matrix else 0) for n in names)
    everything = grouped(project, list(project.tasks))
    for group, members in groups.items():
        if members != [group]:
            out.print(Text(f"{group}: {len(members)} expansions"))
        indent = "" if members == [group] else "  "
        for n in members:
            state = states.get(n, "")
            ups = ", ".join(_upstream(project, n, flows, everything))
            line = Text(f"{indent}{n:<{width - len(indent)}}  ")
            line.append(f"{state:<10}" if ups else state, style=_TEXT_STYLES.get(state, ""))
            line.append(f"  <- {ups}" if ups else "")
            line.rstrip()
            out.print(line)


def _upstream(
    project: Project,
    name: str,
    flows: dict[tuple[str, str], str],
    everything: dict[str, list[str]],
) -> list[str]:
    """A task's upstreams, every expansion of a matrix task gathered shown as the task."""
    out: list[str] = []
    for group, members in grouped(project, list(project.tasks[name].upstream())).items():
        if members != [group] and members == everything[group]:
            out.append(f"{group} (all {len(members)} expansions, {flows[members[0], name]})")
        else:
            out.extend(f"{u} ({flows[u, name]})" for u in members)
    return out
