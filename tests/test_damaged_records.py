"""Records of the wrong shape in the store or the cache: treated as absent, replaced,
with a one-line notice; never a crash, never a result."""

from __future__ import annotations

import json

import pytest
from conftest import ProjectDir

TASK = '[tasks.train]\nentry_point = "train.py"\n'
WORKER = """
from pathlib import Path
from worker_toolkit import worker_lib
args = worker_lib.parseArgs()
Path(args.model_dir, "weights").write_text("w")
"""


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ({"components": []}, "no fingerprint"),
        ({}, "no fingerprint"),
        ("not an object", "not a JSON object"),
        ("no outputs", "no outputs"),
        ("components a list", "components is list"),
        ("outputs without a key", "outputs.model: no key"),
    ],
)
def test_a_damaged_marker_is_ignored_and_replaced(
    project: ProjectDir, damage: object, why: str
) -> None:
    project.ssmfile(TASK)
    project.write("train.py", WORKER)
    assert project.run().code == 0
    marker_path = project.store(project.root.name, "train", "ssmake.json")
    marker = json.loads(marker_path.read_text())
    if damage == "no outputs":
        del marker["outputs"]
    elif damage == "components a list":
        marker["components"] = []
    elif damage == "outputs without a key":
        del marker["outputs"]["model"]["key"]
    else:
        marker = damage
    marker_path.write_text(json.dumps(marker))

    status = project.run("status")
    result = project.run()

    assert status.code == 0, status.err
    assert "train  stale" in status.out
    assert f"ignoring the damaged record {project.root.name}/train/ssmake.json ({why}" in status.err
    assert result.code == 0, result.err
    assert "ignoring the damaged record" in result.err
    # The run record of the fingerprint is whole: the marker is restored from it.
    assert "1 restored" in result.err
    assert json.loads(marker_path.read_text())["outputs"]["model"]["key"]
    assert project.run().err.count("up to date") == 1


def test_a_damaged_marker_and_run_record_run_the_task_again(project: ProjectDir) -> None:
    project.ssmfile(TASK)
    project.write("train.py", WORKER)
    assert project.run().code == 0
    task_dir = project.store(project.root.name, "train")
    for record in [task_dir / "ssmake.json", *task_dir.glob("runs/*.json")]:
        record.write_text('{"components": []}')

    result = project.run()

    assert result.code == 0, result.err
    assert result.err.count("ignoring the damaged record") == 2
    assert "1 done" in result.err
    assert project.run().err.count("up to date") == 1


@pytest.mark.parametrize("record", [{}, {"job": "train-1"}, [], {"host": "h", "pid": "1"}])
def test_an_inflight_record_of_the_wrong_shape_is_taken_over(
    project: ProjectDir, record: object
) -> None:
    project.ssmfile(TASK)
    project.write("train.py", WORKER)
    inflight = project.store(project.root.name, "train", "inflight.json")
    inflight.parent.mkdir(parents=True)
    inflight.write_text(json.dumps(record))

    result = project.run()

    assert result.code == 0, result.err
    assert "taking over from a damaged in-flight record" in result.err
    assert not inflight.exists()


@pytest.mark.parametrize(
    "cache",
    [
        '{"version": 1, "entries": {"x": 5}}',
        '{"version": 1, "entries": []}',
        "[]",
        "{not json",
    ],
)
def test_a_damaged_hash_cache_is_started_afresh(project: ProjectDir, cache: str) -> None:
    project.ssmfile(TASK)
    project.write("train.py", WORKER)
    assert project.run().code == 0
    project.root.joinpath(".ssmake/cache/hashes.bin").write_text(cache)
    for digests in project.root.glob(".ssmake/cache/stat-digests.json"):
        digests.write_text(cache)

    result = project.run()

    assert result.code == 0, result.err
    assert "up to date" in result.err
