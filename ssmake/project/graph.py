"""Task order: which tasks a set of targets needs, upstream first."""

from __future__ import annotations

import difflib
from graphlib import CycleError, TopologicalSorter

from ssmake.errors import ConfigError
from ssmake.project.model import Project


def select(project: Project, targets: list[str] | tuple[str, ...]) -> list[str]:
    """The targets (or the project's defaults, or every task) and everything they need,
    in an order where each task comes after its upstream tasks."""
    wanted = list(targets) or list(project.default) or list(project.tasks)
    for name in wanted:
        if name not in project.tasks:
            close = difflib.get_close_matches(name, list(project.tasks), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(project.tasks)
            raise ConfigError(f"unknown task {name!r}{hint} (tasks: {known})")
    needed: set[str] = set()
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(u for u in project.tasks[name].upstream() if u not in project.external)
    return order(project, needed)


def order(project: Project, names: set[str] | None = None) -> list[str]:
    """A dependency order of `names` (default: all tasks), stable in file order."""
    names = set(project.tasks) if names is None else names
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name in project.tasks:
        if name in names:
            sorter.add(name, *[u for u in project.tasks[name].upstream() if u in names])
    try:
        sorter.prepare()
    except CycleError as e:
        cycle = " -> ".join(reversed(e.args[1]))
        raise ConfigError(f"dependency cycle: {cycle}") from None
    position = {name: i for i, name in enumerate(project.tasks)}
    result: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        result.extend(ready)
        sorter.done(*ready)
    return result


def downstream(project: Project, name: str) -> set[str]:
    """Every task that (transitively) needs `name`."""
    out: set[str] = set()
    changed = True
    while changed:
        changed = False
        for task in project.tasks.values():
            if task.name not in out and any(u == name or u in out for u in task.upstream()):
                out.add(task.name)
                changed = True
    return out
