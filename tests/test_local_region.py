"""A local job is told the region AWS's configuration names (sagemaker_region), and
a local build with no AWS configuration never imports boto3 to find that out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ProjectDir

ROOT = Path(__file__).resolve().parents[1]

WORKER = """\
import json, os, sys
hps = json.load(open("/".join([os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json"])))
with open(os.path.join(os.environ["SM_MODEL_DIR"], "region.txt"), "w") as f:
    f.write(hps.get("sagemaker_region", "(none)"))
"""


def _project(project: ProjectDir) -> None:
    project.write("code/train.py", WORKER)
    project.ssmfile(
        """
        [tasks.train]
        source_dir = "code"
        entry_point = "train.py"
        download = ["model"]
        output_path = "out"
        """
    )


def _ssmake(project: ProjectDir, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean |= {"AWS_CONFIG_FILE": str(project.root / "no-aws-config"), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ssmake.cli", "-C", str(project.root)],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if "|" in line}


def test_without_aws_configuration_a_local_build_imports_no_boto3(project: ProjectDir) -> None:
    _project(project)

    done = _ssmake(project)

    assert done.returncode == 0, done.stderr[-2000:]
    assert "boto3" not in _imported(done.stderr) and "botocore" not in _imported(done.stderr)
    assert (project.root / "out" / "model" / "region.txt").read_text() == "(none)"


def test_the_region_of_the_environment_reaches_the_local_job(project: ProjectDir) -> None:
    _project(project)

    done = _ssmake(project, AWS_DEFAULT_REGION="eu-west-2")

    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((project.root / "out" / "model" / "region.txt").read_text()) == "eu-west-2"
