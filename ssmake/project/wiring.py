"""How a task reads a matrix task upstream: pair with it, or gather it.

A task whose own matrix has the same keys as its upstream's reads the expansion
with its own values (`evaluate[lr=0.1]` reads `train[lr=0.1]`); any other task
gathers: its channel holds every expansion's tarball, one subdirectory each.
"""

from __future__ import annotations

import dataclasses

from ssmake.project import schema
from ssmake.project.matrix import expansion_name, same, slug
from ssmake.project.model import Input, Task


def expansions(tasks: dict[str, Task]) -> dict[str, list[str]]:
    """Each matrix task (as written) and the names of its expansions, in order."""
    groups: dict[str, list[str]] = {}
    for task in tasks.values():
        if task.matrix:
            groups.setdefault(task.group, []).append(task.name)
    return groups


def wire(issues: schema.Issues, tasks: dict[str, Task]) -> dict[str, Task]:
    """The tasks with their references to matrix tasks resolved to expansions."""
    groups = expansions(tasks)
    wired: dict[str, Task] = {}
    for name, task in tasks.items():
        inputs = tuple(_input(issues, task, inp, tasks, groups) for inp in task.inputs)
        after: list[str] = []
        for upstream in task.after:
            if upstream in groups:
                paired = _pair(task, upstream, tasks, groups)
                after.extend([paired] if paired else groups[upstream])
            else:
                after.append(upstream)
        wired[name] = dataclasses.replace(task, inputs=inputs, after=tuple(after))
    _check_slugs(issues, wired)
    return wired


def _input(
    issues: schema.Issues,
    task: Task,
    inp: Input,
    tasks: dict[str, Task],
    groups: dict[str, list[str]],
) -> Input:
    if inp.task is None or inp.task not in groups:
        return inp
    path = ("tasks", task.group, "inputs", inp.name)
    paired = _pair(task, inp.task, tasks, groups)
    if paired is not None:
        return dataclasses.replace(inp, task=paired)
    if set(task.matrix) == set(tasks[groups[inp.task][0]].matrix):
        issues.invalid(
            path,
            f"{task.name} has no partner: {expansion_name(inp.task, task.matrix)} is not an "
            f"expansion of {inp.task} (excluded or not in its matrix); "
            "give both tasks the same values",
        )
    elif inp.output == "state":
        issues.invalid(
            path,
            f"{inp.task} has a matrix: gathering the state of its expansions is not supported; "
            'read output = "model" or "output"',
        )
    return dataclasses.replace(inp, gather=tuple(groups[inp.task]))


def _pair(
    task: Task, upstream: str, tasks: dict[str, Task], groups: dict[str, list[str]]
) -> str | None:
    """The expansion of `upstream` with `task`'s values, when their matrices share keys."""
    first = tasks[groups[upstream][0]]
    if not task.matrix or set(task.matrix) != set(first.matrix):
        return None
    for name in groups[upstream]:
        values = tasks[name].matrix
        if all(same(values[key], value) for key, value in task.matrix.items()):
            return name
    return None


def _check_slugs(issues: schema.Issues, tasks: dict[str, Task]) -> None:
    """Two tasks must not share a place in the store."""
    seen: dict[str, str] = {}
    for name in tasks:
        other = seen.setdefault(slug(name), name)
        if other != name:
            issues.invalid(
                ("tasks", tasks[name].group, "matrix"),
                f"{name} and {other} would share the store prefix {slug(name)!r}; "
                "make their values differ in letters or digits, not only punctuation",
            )
