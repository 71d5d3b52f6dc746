"""The local store on a full or read-only disk, downloads where they cannot go, and
tarballs in the store that are not the ones the marker recorded: a clear error
naming the path and the operation, the right exit code, nothing half-written."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ProjectDir

WORKER = """
import os
from pathlib import Path
from worker_toolkit import worker_lib
args = worker_lib.parseArgs()
Path(args.model_dir, "weights").write_bytes(os.urandom(int(os.environ.get("SIZE", "16"))))
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: mounting one needs root."""
    if os.geteuid() != 0:
        reason = "a small disk is a tmpfs mount, which needs root; run the tests as root"
        print(f"skipped: {reason}")
        pytest.skip(reason)
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def project_on(project: ProjectDir, store: Path, size: int = 16) -> None:
    project.ssmfile(
        f"""
        [project]
        store = "{store}"

        [tasks.train]
        entry_point = "train.py"
        environment = {{ SIZE = "{size}" }}
        """
    )
    project.write("train.py", WORKER)


def leftovers(store: Path) -> list[str]:
    return [p.name for p in store.rglob("*") if p.name.endswith(".tmp")]


def test_a_full_store_fails_the_task_clearly_and_the_next_run_recovers(
    project: ProjectDir, small_disk: Path
) -> None:
    store = small_disk / "store"
    project_on(project, store, size=4 << 20)  # a model bigger than the disk

    result = project.run()

    assert result.code == 1, result.err
    assert "No space left on device" in result.err
    assert "cannot copy" in result.err and str(store) in result.err
    assert "Traceback" not in result.err
    assert not (store / project.root.name / "train" / "ssmake.json").exists()
    assert not (store / project.root.name / "train" / "inflight.json").exists()
    assert leftovers(store) == []

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = project.run()
    assert again.code == 0, again.err
    assert (store / project.root.name / "train" / "ssmake.json").exists()


def test_a_read_only_store_fails_the_task_clearly(project: ProjectDir, small_disk: Path) -> None:
    store = small_disk / "store"
    store.mkdir()
    project_on(project, store)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)

    result = project.run()

    assert result.code == 1, result.err
    assert "Read-only file system" in result.err
    assert f"cannot write file://{store}" in result.err
    assert "Traceback" not in result.err


@pytest.fixture
def built(project: ProjectDir) -> ProjectDir:
    project_on(project, project.root / ".ssmake", size=2000)
    assert project.run().code == 0
    return project


def model_tarball(project: ProjectDir) -> Path:
    (found,) = project.store(project.root.name, "train").glob("*/output/model.tar.gz")
    return found


def test_download_into_a_file_is_a_usage_error(built: ProjectDir) -> None:
    (built.root / "taken").write_text("a file")

    result = built.run("download", "train", "-o", "taken")

    assert result.code == 2, result.err
    assert "is a file, not a directory; remove it or download elsewhere (-o DIR)" in result.err
    assert (built.root / "taken").read_text() == "a file"


def test_download_to_a_name_too_long_is_a_usage_error(built: ProjectDir) -> None:
    result = built.run("download", "train", "-o", "x" * 300)

    assert result.code == 2, result.err
    assert "the name is too long for the file system" in result.err
    assert "Traceback" not in result.err


def test_download_onto_a_full_disk_fails_and_leaves_nothing(
    built: ProjectDir, small_disk: Path
) -> None:
    (small_disk / "filler").write_bytes(b"\0" * ((2 << 20) - 4096))
    dest = small_disk / "out"

    result = built.run("download", "train", "-o", str(dest))

    assert result.code == 1, result.err
    assert "No space left on device" in result.err
    assert "Traceback" not in result.err
    assert not (dest / "model").exists()
    assert [p.name for p in dest.iterdir()] == [] if dest.exists() else True


@pytest.mark.parametrize("damage", ["swapped", "truncated"])
def test_download_refuses_a_tarball_that_is_not_the_recorded_one(
    built: ProjectDir, damage: str
) -> None:
    tarball = model_tarball(built)
    data = tarball.read_bytes()
    tarball.write_bytes(data[: len(data) // 2] if damage == "truncated" else data + b"\0" * 10)
    dest = built.root / "out"

    result = built.run("download", "train", "-o", str(dest))

    assert result.code == 2, result.err
    assert f"refusing to download file://{tarball}: it is not the model job" in result.err
    assert "nothing was extracted" in result.err
    assert not (dest / "model").exists()
