"""After a failure: status, explain, logs and download name the failed attempt;
the log tail points at the user's files, is printed once and literally; hints for
a missing module and for requirements pip cannot install; one JSON schema."""

from __future__ import annotations

import json
import os
import stat
import time
from typing import TYPE_CHECKING

import pytest
from conftest import ProjectDir

from ssmake.aws import resolve_region
from ssmake.compat.cli import main as ssm_main

if TYPE_CHECKING:
    from aws_fixtures import AwsEnv, SageMakerEmulator

SSMFILE = """
[project]
name = "demo"

[tasks.train]
source_dir = "train"
entry_point = "train.py"
download = ["model", "logs"]
output_path = "out"
"""
GOOD = """\
import os
from pathlib import Path
Path(os.environ["SM_MODEL_DIR"], "w").write_text("1")
"""
BAD = """\
def fit():
    print("[info] fitting [/bold] now")
    raise ValueError("bad [/red] value")

fit()
"""


@pytest.fixture
def failing(project: ProjectDir) -> ProjectDir:
    project.ssmfile(SSMFILE)
    project.write("train/train.py", BAD)
    return project


def test_the_tail_points_at_the_users_file_and_is_literal(failing: ProjectDir) -> None:
    result = failing.run("-q")

    assert result.code == 1
    assert 'File "train/train.py", line 3, in fit' in result.err
    assert ".ssmake/cache/runs" not in result.err
    assert "[info] fitting [/bold] now" in result.err
    assert "ValueError: bad [/red] value" in result.err
    # The banner of each instance is not part of what a person reads by default.
    assert "Invoking script" not in result.err


def test_the_tail_is_printed_once(failing: ProjectDir) -> None:
    result = failing.run()

    assert result.code == 1
    assert result.err.count("ValueError: bad [/red] value") == 1
    assert "FAILED: task train: job train-" in result.err


def test_the_banner_shows_once_per_job_with_v(project: ProjectDir) -> None:
    project.ssmfile('[tasks.two]\nentry_point = "w.py"\ninstance_count = 2\n')
    project.write("w.py", "print('hi')\n")

    quiet = project.run()
    project.write("w.py", "print('hi again')\n")
    verbose = project.run("-v")

    assert "Invoking script" not in quiet.err
    assert verbose.err.count("Invoking script with the following command:") == 1


def test_status_explain_and_logs_show_the_last_failed_attempt(failing: ProjectDir) -> None:
    failing.write("train/train.py", GOOD)
    assert failing.run().code == 0
    failing.write("train/train.py", BAD)
    assert failing.run().code == 1
    failed = json.loads(failing.store("demo", "train", "failed.json").read_text())["job"]

    status = failing.run("status")
    explain = failing.run("explain", "train")
    logs = failing.run("logs", "train")

    assert status.code == 0
    assert f"train  failed      job {failed}, exit 1, 0 s ago (ssmake logs train)" in status.out
    assert f"train failed on its last attempt: job {failed}, exit 1" in explain.out
    assert "nothing changed since" in explain.out
    assert f"==> train: failed: job {failed}, exit 1, 0 s ago <==" in logs.err
    assert "ValueError: bad [/red] value" in logs.out
    assert 'File "train/train.py", line 3, in fit' in logs.out


def test_logs_job_picks_another_job(failing: ProjectDir) -> None:
    failing.write("train/train.py", GOOD)
    assert failing.run().code == 0
    good = json.loads(failing.store("demo", "train", "ssmake.json").read_text())["job"]
    failing.write("train/train.py", BAD)
    assert failing.run().code == 1

    logs = failing.run("logs", "train", "--job", good)

    assert logs.code == 0
    assert f"==> train: job {good} <==" in logs.err
    assert "ValueError" not in logs.out


def test_a_success_clears_the_failure(failing: ProjectDir) -> None:
    assert failing.run().code == 1
    failing.write("train/train.py", GOOD)

    stale = failing.run("status")
    assert failing.run().code == 0
    status = failing.run("status")

    assert "stale" in stale.out and "last attempt failed: job train-" in stale.out
    assert "up-to-date" in status.out and "failed" not in status.out


def test_download_says_the_result_is_older_than_the_failure(failing: ProjectDir) -> None:
    failing.write("train/train.py", GOOD)
    assert failing.run().code == 0
    failing.write("train/train.py", BAD)
    assert failing.run().code == 1

    result = failing.run("download", "train", "-o", "got")

    assert result.code == 0
    assert "are older than the task's last attempt, which failed: job train-" in result.err


def test_downloaded_files_get_the_time_of_extraction_and_group_read(
    failing: ProjectDir,
) -> None:
    failing.write("train/train.py", GOOD)
    before = time.time() - 5

    assert failing.run().code == 0

    model = failing.root / "out" / "model" / "w"
    log = failing.root / "out" / "logs" / "logs0"
    assert model.stat().st_mtime > before
    assert log.stat().st_mtime > before
    umask = os.umask(0o022)
    os.umask(umask)
    if not umask & 0o040:
        assert log.stat().st_mode & stat.S_IRGRP


def test_a_missing_module_says_where_requirements_go(project: ProjectDir) -> None:
    project.ssmfile('[tasks.fit]\nsource_dir = "fit"\nentry_point = "fit.py"\n')
    project.write("fit/fit.py", "import sklearnx_not_installed\n")

    result = project.run("-q")

    assert result.code == 1
    assert "task fit has no requirements file, so it runs on ssmake's own interpreter" in result.err
    assert "no module 'sklearnx_not_installed': add it to fit/requirements.txt" in result.err


def test_requirements_pip_cannot_install_name_the_file_and_pips_error(
    project: ProjectDir,
) -> None:
    project.ssmfile('[tasks.fit]\nsource_dir = "fit"\nentry_point = "fit.py"\n')
    project.write("fit/fit.py", "print('never')\n")
    project.write("fit/requirements.txt", "this is not === a requirement\n")

    result = project.run("-q")

    assert result.code == 1
    assert "fit/requirements.txt: pip install -r requirements.txt failed: ERROR:" in result.err
    assert "bin/python -m pip" not in result.err


def test_json_of_plan_run_and_status_share_one_schema(failing: ProjectDir) -> None:
    failing.write("train/train.py", GOOD)
    plan = json.loads(failing.run("-n", "--json").out)
    run = json.loads(failing.run("--json").out)
    status = json.loads(failing.run("status", "--json").out)

    for doc in (plan, run, status):
        assert doc["schema"] == 1 and doc["project"] == "demo"
        assert {"name", "state", "reasons", "fingerprint", "job"} <= set(doc["tasks"][0])
    assert plan["tasks"][0]["state"] == "stale"
    assert run["tasks"][0]["state"] == "done"
    assert status["tasks"][0]["state"] == "up-to-date"
    assert plan["tasks"][0]["backend"] == "local"
    assert plan["tasks"][0]["instance_count"] == 1
    assert plan["tasks"][0]["upload_bytes"] == len(GOOD)


def test_dry_run_tells_backend_instances_image_and_upload(project: ProjectDir) -> None:
    project.ssmfile(
        '[tasks.t]\nentry_point = "w.py"\ninstance_type = "ml.c5.xlarge"\n'
        'instance_count = 2\ninputs.data = { path = "data" }\n'
    )
    project.write("w.py", "pass\n")
    project.write("data/big.bin", "x" * 3000)

    result = project.run("-n")

    assert result.code == 0
    assert "t: stale (no marker yet)" in result.out
    assert (
        "would run on local: ml.c5.xlarge x 2, image ssmake's own interpreter, "
        "uploading up to 2.9 KiB"
    ) in result.out


def test_aws_region_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")

    assert resolve_region(None) == "eu-west-3"


def test_backend_sagemaker_without_a_store_uses_the_default_bucket(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator
) -> None:
    project.ssmfile('[project]\nname = "demo"\n[tasks.t]\nentry_point = "w.py"\n')
    project.write("w.py", "pass\n")

    result = project.run("-n", "--backend", "sagemaker")

    assert result.code == 0, result.err
    assert f"created bucket s3://sagemaker-us-east-1-{aws.account}" in result.err
    assert "t: stale" in result.out


def test_ssm_without_credentials_says_how_to_run_locally(
    project: ProjectDir, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    project.write("w.py", "pass\n")

    code = ssm_main(["run", "-p", "demo", "-t", "t", "-e", "w.py"])

    err = capsys.readouterr().err
    assert code == 2
    assert "no usable AWS credentials" in err
    assert "store ''" not in err
    assert "pass --backend local or export SSMAKE_BACKEND=local" in err
