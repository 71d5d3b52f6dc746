"""Task matrices: expansion, naming, addressing, wiring downstream, and limits."""

from __future__ import annotations

import io
import json
import tarfile

from conftest import ProjectDir

from ssmake.events import TaskDone, TaskStarted, TaskUpToDate
from ssmake.plan.layout import job_name
from ssmake.project.matrix import SLUG_MAX, slug
from ssmake.ui.board import Board

WORKER = """\
import json
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
seen = {"hps": args.hps, "env": __import__("os").environ.get("TAG")}
for name in sorted(vars(args)):
    if name.startswith("input_") and name != "input_dir":
        seen[name] = sorted(
            p.relative_to(getattr(args, name)).as_posix()
            for p in Path(getattr(args, name)).rglob("*") if p.is_file()
        )
Path(args.model_dir, "seen.json").write_text(json.dumps(seen))
"""

SWEEP = """\
[tasks.train]
entry_point = "train.py"
matrix = { lr = [0.1, 0.01], depth = [3, 5] }
exclude = [{ lr = 0.01, depth = 5 }]
hyperparameters = { epochs = 10, depth_too = "${matrix.depth}" }
environment = { TAG = "d${matrix.depth}" }

[tasks.evaluate]
entry_point = "train.py"
inputs.models = { task = "train" }

[tasks.score]
entry_point = "train.py"
matrix = { depth = [3], lr = [0.1] }
inputs.model = { task = "train" }
"""


def _seen(project: ProjectDir, task: str) -> dict[str, object]:
    marker = json.loads(project.store("proj", slug(task), "ssmake.json").read_text())
    with tarfile.open(project.root / ".ssmake" / marker["outputs"]["model"]["key"]) as tar:
        member = tar.extractfile("seen.json")
        assert member is not None
        return dict(json.load(member))


def _plan(project: ProjectDir, *args: str) -> list[dict[str, object]]:
    result = project.run("-n", "--json", *args)
    assert result.code == 0, result.err
    return list(json.loads(result.out)["tasks"])


def test_each_combination_is_a_task_with_its_values(project: ProjectDir) -> None:
    project.ssmfile(SWEEP)
    project.write("train.py", WORKER)

    plan = _plan(project, "train")

    assert [(t["name"], t["matrix"]) for t in plan] == [
        ("train[depth=3,lr=0.1]", {"lr": 0.1, "depth": 3}),
        ("train[depth=5,lr=0.1]", {"lr": 0.1, "depth": 5}),
        ("train[depth=3,lr=0.01]", {"lr": 0.01, "depth": 3}),
    ]
    assert len({t["fingerprint"] for t in plan}) == 3
    result = project.run("train[depth=5,lr=0.1]")
    assert result.code == 0, result.err
    seen = _seen(project, "train[depth=5,lr=0.1]")
    # The values are hyperparameters; a lone placeholder keeps the value's type.
    assert seen["hps"] == {"epochs": 10, "depth_too": 5, "lr": 0.1, "depth": 5}
    assert seen["env"] == "d5"
    assert "job train-depth-5-lr-0-1-" in result.err


def test_addresses_pick_expansions_by_their_values(project: ProjectDir) -> None:
    project.ssmfile(SWEEP)
    project.write("train.py", WORKER)

    assert [t["name"] for t in _plan(project, "train[lr=0.10]")] == [
        "train[depth=3,lr=0.1]",
        "train[depth=5,lr=0.1]",
    ]
    assert [t["name"] for t in _plan(project, "train[lr=0.1,depth=3]")] == ["train[depth=3,lr=0.1]"]
    missing = project.run("-n", "train[lr=0.5]")
    assert missing.code == 2
    assert "no expansion of train matches 'train[lr=0.5]'" in missing.err


def test_a_task_without_a_matrix_gathers_and_one_with_the_same_keys_pairs(
    project: ProjectDir,
) -> None:
    project.ssmfile(SWEEP)
    project.write("train.py", WORKER)

    result = project.run("-j", "3")

    assert result.code == 0, result.err
    gathered = _seen(project, "evaluate")["input_models"]
    assert gathered == [
        "train-depth-3-lr-0-01/model.tar.gz",
        "train-depth-3-lr-0-1/model.tar.gz",
        "train-depth-5-lr-0-1/model.tar.gz",
    ]
    assert _seen(project, "score[depth=3,lr=0.1]")["input_model"] == ["model.tar.gz"]
    status = project.run("status")
    assert "train                     3 expansions: 3 up-to-date" in status.out
    assert "  train[depth=3,lr=0.1]   up-to-date" in status.out
    graph = project.run("graph")
    assert "train: 3 expansions\n  train[depth=3,lr=0.1]" in graph.out
    assert "<- train (all 3 expansions, model)" in graph.out
    assert "<- train[depth=3,lr=0.1] (model)" in graph.out


def test_adding_a_value_runs_only_the_new_expansions(project: ProjectDir) -> None:
    project.ssmfile(SWEEP)
    project.write("train.py", WORKER)
    assert project.run("-q").code == 0

    project.ssmfile(SWEEP.replace("depth = [3, 5] }", "depth = [3, 5, 7] }"))
    plan = {t["name"]: t["state"] for t in _plan(project)}

    stale = sorted(name for name, state in plan.items() if state != "up-to-date")
    assert stale == ["evaluate", "train[depth=7,lr=0.01]", "train[depth=7,lr=0.1]"]
    result = project.run("-q")
    assert result.code == 0, result.err
    assert len(_seen(project, "evaluate")["input_models"]) == 5  # type: ignore[arg-type]

    project.ssmfile(SWEEP)
    plan = {t["name"]: t for t in _plan(project)}
    stale = sorted(name for name, t in plan.items() if t["state"] != "up-to-date")
    assert stale == ["evaluate"]
    assert "input models: train[depth=7,lr=0.1] removed" in plan["evaluate"]["reasons"]


def test_bad_matrices_are_reported_where_they_are(project: ProjectDir) -> None:
    project.write("train.py", WORKER)
    project.ssmfile(
        """\
        [tasks.train]
        entry_point = "train.py"
        matrix = { lr = 0.1, depth = [], opt = [{ a = 1 }], seed = [1, 1] }
        hyperparameters = { lr = 0.5 }
        output_path = "out/${matrix.lrr}"

        [tasks.plain]
        entry_point = "train.py"
        exclude = [{ lr = 0.1 }]
        output_path = "out/${matrix.lr}"
        """
    )

    result = project.run("-n")

    assert result.code == 2
    for message in (
        "Ssmfile.toml:3: tasks.train.matrix.lr: expected an array of values, got float 0.1; "
        "write [0.1]",
        "tasks.train.matrix.depth: an empty array expands to nothing",
        "tasks.train.matrix.opt: item 1: expected a string, number or boolean, got a table",
        "tasks.train.matrix.seed: item 2: 1 is listed twice",
        "tasks.plain.exclude: drops combinations of a matrix",
        "tasks.plain.output_path: 'out/${matrix.lr}' names a matrix value, but the task has no",
    ):
        assert message in result.err


def test_hyperparameter_clashes_placeholders_and_exclusions(project: ProjectDir) -> None:
    project.write("train.py", WORKER)
    project.ssmfile(
        """\
        [tasks.train]
        entry_point = "train.py"
        matrix = { lr = [0.1, 0.2] }
        exclude = [{ lr = 0.3 }, { seed = 1 }]
        hyperparameters = { lr = 0.5 }
        output_path = "out/${matrix.lrr}"
        """
    )

    result = project.run("-n")

    assert result.code == 2
    assert "tasks.train.hyperparameters.lr: lr is a matrix key of tasks.train" in result.err
    assert "${matrix.lrr} is not a matrix key; did you mean 'lr'?" in result.err
    assert "item 1: lr = 0.3 is not in matrix.lr (0.1, 0.2)" in result.err
    assert "item 2: 'seed' is not a matrix key" in result.err


def test_the_number_of_combinations_is_limited(project: ProjectDir) -> None:
    project.write("train.py", WORKER)
    values = ", ".join(str(i) for i in range(40))
    project.ssmfile(
        f"""\
        [tasks.train]
        entry_point = "train.py"
        matrix = {{ a = [{values}], b = [{values}] }}
        """
    )

    refused = project.run("-n")
    raised = project.run("-n", "--max-expansions", "1600")

    assert refused.code == 2
    assert "1600 combinations, more than the limit of 1000" in refused.err
    assert "--max-expansions 1600" in refused.err
    assert raised.code == 0, raised.err
    assert raised.out.count("stale") == 1600


def test_long_names_get_a_short_hash_and_fit_a_job_name() -> None:
    long = "train[" + ",".join(f"parameter{i}=value{i}" for i in range(6)) + "]"
    other = long.replace("value5", "value6")

    assert slug("train[depth=3,lr=0.1]") == "train-depth-3-lr-0-1"
    assert slug("train") == "train"
    assert len(slug(long)) == SLUG_MAX and slug(long) != slug(other)
    assert slug(long).startswith("train-parameter0-value0-")
    assert len(job_name(long, "f" * 64, 12)) <= 63


def test_the_board_shows_expansions_under_their_task() -> None:
    stream = io.StringIO()
    board = Board(stream)
    board(TaskStarted("train[depth=3,lr=0.1]", ("no marker yet",)))
    board(TaskDone("train[depth=5,lr=0.1]", "train-depth-5-lr-0-1-0123456789-1", 3.0))
    board(TaskUpToDate("evaluate", "evaluate-0123456789-1"))
    board.close()

    lines = [line.rstrip() for line in stream.getvalue().splitlines()]
    assert lines[0].startswith("ssmake  2/3 done")
    # Closed with a task still running: it stopped with the board.
    assert lines[1].startswith("train ") and "2 expansions: 1 stopped, 1 done" in lines[1]
    assert any(line.startswith("  [depth=3,lr=0.1]  stopped") for line in lines)
    assert any(line.startswith("  [depth=5,lr=0.1]  done") for line in lines)
    assert lines[-1].startswith("evaluate") and "up to date" in lines[-1]


def test_single_task_commands_need_one_expansion(project: ProjectDir) -> None:
    project.ssmfile(SWEEP)
    project.write("train.py", WORKER)
    assert project.run("-q", "train[depth=3,lr=0.1]").code == 0

    many = project.run("logs", "train")
    one = project.run("logs", "train[lr=0.1,depth=3]")

    assert many.code == 2
    assert "'train' names 3 expansions; name one of: train[depth=3,lr=0.1]," in many.err
    assert one.code == 0, one.err


def test_wiring_errors_and_other_keys_gather(project: ProjectDir) -> None:
    project.write("train.py", WORKER)
    project.ssmfile(
        """\
        [tasks.train]
        entry_point = "train.py"
        matrix = { lr = [0.1, 0.2] }

        [tasks.score]
        entry_point = "train.py"
        matrix = { lr = [0.1, 0.3] }
        inputs.model = { task = "train" }

        [tasks.state]
        entry_point = "train.py"
        inputs.model = { task = "train", output = "state" }
        """
    )

    result = project.run("-n")
    project.write(
        "Other.toml", '[defaults]\nmatrix = { seed = [1] }\n[tasks.t]\nentry_point = "train.py"\n'
    )
    in_defaults = project.run("-n", "-f", "Other.toml")

    assert in_defaults.code == 2
    assert "defaults.matrix: matrix belongs to a task: move it to [tasks.NAME]" in in_defaults.err
    assert result.code == 2
    assert (
        "tasks.score.inputs.model: score[lr=0.3] has no partner: train[lr=0.3] is not an "
        "expansion of train"
    ) in result.err
    assert "gathering the state of its expansions is not supported" in result.err

    project.ssmfile(
        """\
        [tasks.train]
        entry_point = "train.py"
        matrix = { lr = [0.1, 0.2] }

        [tasks.seeds]
        entry_point = "train.py"
        matrix = { seed = [1, 2] }
        inputs.models = { task = "train" }
        """
    )
    graph = project.run("graph").out
    assert graph.count("<- train (all 2 expansions, model)") == 2


def test_values_that_differ_only_in_punctuation_are_refused(project: ProjectDir) -> None:
    project.write("train.py", WORKER)
    project.ssmfile(
        """\
        [tasks.train]
        entry_point = "train.py"
        matrix = { opt = ["a.b", "a-b"] }
        """
    )

    result = project.run("-n")

    assert result.code == 2
    assert "train[opt=a-b] and train[opt=a.b] would share the store prefix 'train-opt-a-b'" in (
        result.err
    )
