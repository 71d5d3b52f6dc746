"""Every project in example_projects/, run on the local backend.

Each example is copied to tmp_path and built in-process from its Ssmfile; then its
run.sh runs the README's `ssm` commands against the same store. The two describe
the same tasks, so run.sh must find every task up to date (no job launched) and
only download results. single_file's run.sh runs the README's script, which
reruns its tasks on purpose (clean_state=True).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import Result

from ssmake.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_projects"


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Example:
    monkeypatch.setenv("SSMAKE_STOP_GRACE_SECONDS", "2")
    monkeypatch.delenv("SSMAKE_BACKEND", raising=False)
    return Example(tmp_path, monkeypatch)


class Example:
    """Copies of example projects, built in-process or by their run.sh."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.root = tmp_path

    def copy(self, name: str) -> Path:
        self.root = self.tmp_path / name
        ignore = shutil.ignore_patterns("output", ".ssmake", "__pycache__")
        shutil.copytree(EXAMPLES / name, self.root, ignore=ignore)
        self.monkeypatch.chdir(self.root)
        return self.root

    def ssmake(self, *args: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["run", "-C", str(self.root), *args])
        result = Result(code, out.getvalue(), err.getvalue())
        assert result.code == 0, result.err
        return result

    def run_sh(self, *, launches: bool = False) -> subprocess.CompletedProcess[str]:
        """Run run.sh with `ssm` being this checkout's; by default it must launch no job."""
        shim = self.tmp_path / "bin" / "ssm"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ssmake.compat.cli "$@"\n')
        shim.chmod(0o755)
        env = dict(os.environ)
        env.update(
            PATH=f"{shim.parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHON=sys.executable,
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            AWS_EC2_METADATA_DISABLED="true",
        )
        proc = subprocess.run(
            ["bash", str(self.root / "run.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert ("launched job" in proc.stderr) == launches, proc.stderr
        return proc

    def text(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def names(self, rel: str) -> list[str]:
        return sorted(p.relative_to(self.root / rel).as_posix() for p in self.files(rel))

    def files(self, rel: str) -> list[Path]:
        return [p for p in (self.root / rel).rglob("*") if p.is_file()]


def test_getting_started_runs_without_a_gpu(example: Example) -> None:
    example.copy("getting_started")

    example.ssmake()

    for log in ("logs0", "logs1"):
        text = example.text(f"output/example1/logs/{log}")
        assert "worker1.py" in text
        assert "-***- " in text and "CUDA devices available" in text
    proc = example.run_sh()
    assert "task1: already completed, not run again" in proc.stdout


def test_passing_args(example: Example) -> None:
    example.copy("passing_args")

    example.ssmake()

    log = example.text("output/example2/logs/logs0")
    assert "Invoking script with the following command:" in log
    assert "worker2.py --msg Hello, world!\n\nHello, world!\n" in log
    proc = example.run_sh()
    assert "Hello, world!" in proc.stdout


def test_state_and_output(example: Example) -> None:
    example.copy("state_output")

    example.ssmake()

    assert example.text("output/example3/model/model_dir") == "model_dir file"
    assert example.text("output/example3/output/output_data_dir") == "output_data_dir file"
    assert example.text("output/example3/state/state_dir") == "state_dir file"
    assert example.text("output/example3/state/algo-1/__COMPLETED__").startswith("task3-")
    example.run_sh()
    # What simple-sagemaker leaves there, and nothing of ssmake's own.
    assert example.names("output/example3_2") == [
        "logs/logs0",
        "model/model_dir",
        "output/output_data_dir",
        "state/algo-1/__COMPLETED__",
        "state/state_dir",
    ]


def test_input_data_with_a_local_stand_in_for_s3(example: Example) -> None:
    example.copy("input_data")

    example.ssmake()

    log = example.text("output/example4/logs/logs0")
    assert "/input/data/data:\n" in log and "sample_data.txt" in log
    assert "/input/data/bucket:\n" in log and "persons.json" in log
    proc = example.run_sh()
    assert "no AWS credentials are configured: the local stand-in ./persons" in proc.stderr


def test_chaining_uses_the_model_of_task3(example: Example) -> None:
    example.copy("chaining")

    result = example.ssmake()

    launched = [
        line.split(":")[1].strip() for line in result.err.splitlines() if "launched" in line
    ]
    assert launched == ["task3", "task5"]
    log = example.text("output/example5/logs/logs0")
    assert "INFO:__main__:*** START listing files in \n" in log
    assert "/input/data/bucket:\n" in log and "model.tar.gz" in log
    example.run_sh()


def test_fully_featured_example6(example: Example) -> None:
    example.copy("example6")

    example.ssmake()

    part1 = "output/example6_1"
    assert example.names(f"{part1}/model") == [
        "sample_data1.txt_proc_by_algo-1",
        "sample_data2.txt_proc_by_algo-2",
    ]
    model = example.text(f"{part1}/model/sample_data2.txt_proc_by_algo-2")
    assert model == "Sample data file 2 processed by algo-2"
    assert example.names(f"{part1}/output") == ["output_algo-1"]
    assert example.names(f"{part1}/state") == [
        "algo-1/__COMPLETED__",
        "algo-1/algo-1",
        "algo-2/__COMPLETED__",
        "algo-2/algo-2",
    ]
    log1 = example.text(f"{part1}/logs/logs0")
    assert "internal_dependency.lib2, packed from the source directory" in log1
    assert "input channel persons is at" in log1 and "persons.json" in log1
    assert "worker6.py --task_type 1" in log1

    part2 = "output/example6_2"
    logs = [example.text(f"{part2}/logs/logs{i}") for i in (0, 1)]
    for log in logs:
        assert "external_dependency.lib1, packed by -d" in log
        assert "INFO:__main__:Score=10;" in log and "INFO:__main__:Score=20;" in log
        assert "task_6_1_model/model.tar.gz" in log
    # The state of part 1 is sharded: each of its files went to one instance.
    state_files = ["algo-1/__COMPLETED__", "algo-1/algo-1", "algo-2/__COMPLETED__", "algo-2/algo-2"]
    for name in state_files:
        seen = [f"task_6_1_state/{name}\n" in log for log in logs]
        assert seen.count(True) == 1, name
    assert example.names(f"{part2}/state") == ["algo-1/__COMPLETED__", "algo-2/__COMPLETED__"]

    example.run_sh()
    again = example.text("output/example6_1_2_stdout")
    assert "task6-1: already completed, not run again" in again


def test_single_file_example(example: Example) -> None:
    root = example.copy("single_file")

    example.ssmake()

    assert example.names("output/output1/model") == [
        "output_algo-1",
        "output_algo-2",
        "sample_data1.txt_proc_by_algo-1",
        "sample_data2.txt_proc_by_algo-2",
    ]
    task2 = example.text("output/output2/logs/logs0")
    assert "task2_data/model.tar.gz')]" in task2 and "task2_data_dist/model.tar.gz')]" in task2

    # The README's script: clean_state=True reruns both tasks.
    proc = example.run_sh(launches=True)

    assert proc.stderr.count("launched job") == 2
    assert (root / "output" / "output1" / "model" / "sample_data1.txt_proc_by_algo-1").is_file()
    assert "./output/output2/state/algo-2/state_algo-2" in proc.stdout


def test_hello_run_sh_is_the_ssmfiles_task(example: Example) -> None:
    example.copy("hello")

    example.ssmake()

    assert example.text("output/hello/model/message.txt") == "Hello, world!\n"
    proc = example.run_sh()
    assert proc.stdout.endswith("Hello, world!\n")


def test_sweep_trains_a_grid_and_evaluates_every_model(example: Example) -> None:
    example.copy("sweep")

    result = example.ssmake("-j", "4")

    assert result.err.count("launched job train-") == 4
    best = json.loads(example.text("output/evaluate/output/best.json"))
    assert sorted(best["all"]) == [
        "train-depth-3-lr-0-01",
        "train-depth-3-lr-0-1",
        "train-depth-5-lr-0-01",
        "train-depth-5-lr-0-1",
    ]
    assert best["best"] == "train-depth-5-lr-0-01"
    assert json.loads(example.text("output/train-0.1-3/model/score.json"))["depth"] == 3
    again = example.ssmake("train[lr=0.1]")
    assert "launched" not in again.err


def test_distributed_instances_meet_without_torch(example: Example) -> None:
    example.copy("distributed")
    example.ssmake()

    # Ranks 0 and 1 sent rank + round to the master: sums 1, 3, 5.
    for host in ("algo-1", "algo-2"):
        assert json.loads(example.text(f"output/rendezvous/model/{host}.json")) == [1, 3, 5]
