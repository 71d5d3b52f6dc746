"""Task order: which tasks a set of targets needs, upstream first."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from ssmake.errors import ConfigError
from ssmake.project.matrix import matches, parse_address
from ssmake.project.model import Project


def select(project: Project, targets: list[str] | tuple[str, ...]) -> list[str]:
    """The targets (or the project's defaults, or every task) and everything they need,
    in an order where each task comes after its upstream tasks."""
    asked = list(targets) or list(project.default)
    wanted = [name for target in asked for name in resolve(project, target)] or list(project.tasks)
    needed: set[str] = set()
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(u for u in project.tasks[name].upstream() if u not in project.external)
    return order(project, needed)


def resolve(project: Project, target: str) -> list[str]:
    """The tasks a target names: a task, every expansion of a matrix task (`train`),
    or those whose values match an address (`train[lr=0.1]`, keys in any order)."""
    if target in project.tasks:
        return [target]
    address = parse_address(target)
    base, wanted = address if address is not None else (target, {})
    members = [n for n, t in project.tasks.items() if t.matrix and t.group == base]
    chosen = [n for n in members if matches(project.tasks[n].matrix, wanted)]
    if chosen:
        return chosen
    if members:
        listing = ", ".join(members)
        raise ConfigError(f"no expansion of {base} matches {target!r} (expansions: {listing})")
    written = list(dict.fromkeys(t.group for t in project.tasks.values()))
    import difflib  # only for a message

    close = difflib.get_close_matches(base, written, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown task {target!r}{hint} (tasks: {', '.join(written)})")


def only(project: Project, target: str) -> str:
    """The one task a target names, for commands about a single task (logs, download)."""
    names = resolve(project, target)
    if len(names) > 1:
        listing = ", ".join(names)
        raise ConfigError(f"{target!r} names {len(names)} expansions; name one of: {listing}")
    return names[0]


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


def grouped(project: Project, names: list[str]) -> dict[str, list[str]]:
    """`names` under the task each was written as, in order: a matrix task's
    expansions together under its name, any other task alone under its own."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(project.tasks[name].group if name in project.tasks else name, []).append(
            name
        )
    return groups


def summary(states: list[str]) -> str:
    """`4 expansions: 3 up-to-date, 1 stale`."""
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    parts = ", ".join(f"{n} {state}" for state, n in counts.items())
    return f"{len(states)} expansion{'' if len(states) == 1 else 's'}: {parts}"
