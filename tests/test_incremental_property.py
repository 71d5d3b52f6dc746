"""Property: after any sequence of edits, exactly the affected tasks and their downstream run."""

from __future__ import annotations

import io
import re
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssmake.cli import main

# The model names its job: a rerun's outputs always differ, so its downstream reruns.
WORKER = (
    "import os\n# {tag}\n"
    "open(os.path.join(os.environ['SM_MODEL_DIR'], 'm'), 'w')"
    ".write(os.environ['TRAINING_JOB_NAME'])\n"
)


@st.composite
def projects(draw: st.DrawFn) -> dict[str, list[int]]:
    """A random DAG of 2-5 tasks: task i may depend on any earlier task."""
    n = draw(st.integers(min_value=2, max_value=5))
    return {
        f"t{i}": draw(st.lists(st.sampled_from(range(i)), unique=True)) if i else []
        for i in range(n)
    }


edits = st.lists(
    st.tuples(st.sampled_from(["code", "data", "hp", "touch", "ignored"]), st.integers(0, 4)),
    min_size=1,
    max_size=4,
)


def ssmfile(graph: dict[str, list[int]], hps: dict[str, int]) -> str:
    lines = ['[project]\nname = "prop"\n']
    for name, ups in graph.items():
        lines.append(f"[tasks.{name}]")
        lines.append(f'entry_point = "{name}.py"')
        lines.append(f'inputs.data = {{ path = "data/{name}" }}')
        for u in ups:
            lines.append(f'inputs.up{u} = {{ task = "t{u}", output = "model" }}')
        lines.append(f"hyperparameters = {{ v = {hps[name]} }}\n")
    return "\n".join(lines)


def build(root: Path) -> list[str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(["run", "-C", str(root)])
    assert code == 0, err.getvalue()
    return sorted(re.findall(r"ssmake: (\S+): launched job", err.getvalue()))


def downstream(graph: dict[str, list[int]], changed: set[str]) -> set[str]:
    out = set(changed)
    grew = True
    while grew:
        grew = False
        for name, ups in graph.items():
            if name not in out and any(f"t{u}" in out for u in ups):
                out.add(name)
                grew = True
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=projects(), steps=st.lists(edits, min_size=1, max_size=3))
def test_exactly_the_affected_tasks_run(
    graph: dict[str, list[int]], steps: list[list[tuple[str, int]]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hps = {name: 0 for name in graph}
        version = {name: 0 for name in graph}
        (root / ".gitignore").write_text("*.log\n")
        for name in graph:
            (root / f"{name}.py").write_text(WORKER.format(tag=0))
            (root / "data" / name).mkdir(parents=True)
            (root / "data" / name / "x.txt").write_text("0")
        (root / "Ssmfile.toml").write_text(ssmfile(graph, hps))
        assert build(root) == sorted(graph)

        for step in steps:
            changed: set[str] = set()
            for kind, index in step:
                name = f"t{index % len(graph)}"
                version[name] += 1
                if kind == "code":
                    (root / f"{name}.py").write_text(WORKER.format(tag=version[name]))
                    changed.add(name)
                elif kind == "data":
                    (root / "data" / name / "x.txt").write_text(str(version[name]))
                    changed.add(name)
                elif kind == "hp":
                    hps[name] += 1
                    (root / "Ssmfile.toml").write_text(ssmfile(graph, hps))
                    changed.add(name)
                elif kind == "touch":
                    path = root / f"{name}.py"
                    path.write_text(path.read_text())
                else:
                    # Ignored (and outside every input: inside one, a file is data).
                    (root / f"{name}.debug.log").write_text(str(version[name]))
            # Versions only grow, so no edit is a revert that the run cache could restore.
            assert build(root) == sorted(downstream(graph, changed))
            assert build(root) == []
