"""What a user sees while large inputs hash, a local job's inputs are staged or
results download: one phase line each, in human units."""

from __future__ import annotations

import pytest
from conftest import ProjectDir

from ssmake.backends.local import instances
from ssmake.build import downloads
from ssmake.plan import hashcache

SSMFILE = """
[project]
name = "demo"

[tasks.train]
entry_point = "train.py"
download = ["model", "logs"]
output_path = "out"
"""
# Random bytes do not compress: the model's tarball holds about 200 KiB.
TRAIN = """\
import os
from pathlib import Path
Path(os.environ["SM_MODEL_DIR"], "weights").write_bytes(os.urandom(200_000))
"""


@pytest.fixture
def big_model(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> ProjectDir:
    monkeypatch.setattr(downloads, "PROGRESS_MIN_BYTES", 100_000)
    monkeypatch.setattr(downloads, "PROGRESS_INTERVAL", 0.0)  # every file tells
    project.ssmfile(SSMFILE)
    project.write("train.py", TRAIN)
    return project


def test_a_build_reports_its_large_download_once_with_its_size(big_model: ProjectDir) -> None:
    result = big_model.run()

    assert result.code == 0, result.err
    phases = [ln for ln in result.err.splitlines() if ": downloading" in ln]
    assert len(phases) == 1
    assert phases[0].startswith("ssmake: train: downloading (19") and "KiB)" in phases[0]
    assert (big_model.root / "out/model/weights").stat().st_size == 200_000


def test_the_download_command_reports_it_too(big_model: ProjectDir) -> None:
    assert big_model.run().code == 0

    result = big_model.run("download", "train", "-o", "again")

    assert result.code == 0, result.err
    phases = [ln for ln in result.err.splitlines() if ": downloading" in ln]
    assert len(phases) == 1 and phases[0].startswith("ssmake: train: downloading (19")
    assert (big_model.root / "again/model/weights").stat().st_size == 200_000


def test_a_small_download_says_nothing_of_progress(project: ProjectDir) -> None:
    project.ssmfile(SSMFILE)
    project.write("train.py", TRAIN)

    result = project.run()

    assert result.code == 0, result.err
    assert ": downloading" not in result.err
    assert "downloaded model, logs to" in result.err


def test_quiet_hides_the_progress_line(big_model: ProjectDir) -> None:
    result = big_model.run("-q")

    assert result.code == 0, result.err
    assert ": downloading" not in result.err


def test_a_local_job_reports_staging_its_inputs_once(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instances, "PROGRESS_MIN_BYTES", 100_000)
    monkeypatch.setattr(instances, "PROGRESS_INTERVAL", 0.0)
    project.ssmfile(
        """
        [tasks.fit]
        entry_point = "w.py"
        inputs.data = { path = "data" }
        """
    )
    project.write("w.py", "pass\n")
    for i in range(3):
        (project.root / "data").mkdir(exist_ok=True)
        (project.root / f"data/part{i}.bin").write_bytes(bytes(100_000))

    result = project.run()

    assert result.code == 0, result.err
    phases = [ln for ln in result.err.splitlines() if "staging inputs" in ln]
    assert phases == ["ssmake: fit: staging inputs (293.0 KiB)"]


def test_hashing_a_large_input_says_so_once_with_its_size(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashcache, "PROGRESS_MIN_BYTES", 100_000)
    monkeypatch.setattr(hashcache, "PROGRESS_INTERVAL", 0.0)
    project.ssmfile(
        """
        [tasks.fit]
        entry_point = "w.py"
        inputs.data = { path = "data" }
        """
    )
    project.write("w.py", "pass\n")
    (project.root / "data").mkdir()
    for i in range(3):
        (project.root / f"data/part{i}.bin").write_bytes(bytes(100_000))

    result = project.run()

    assert result.code == 0, result.err
    phases = [ln for ln in result.err.splitlines() if ": hashing" in ln]
    assert phases == ["ssmake: fit: hashing (293.0 KiB)"]
