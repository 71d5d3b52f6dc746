"""Cost: estimates before a build, the bill after it, --max-cost, status --cost."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ssmake.plan.cost import load_prices

if TYPE_CHECKING:
    from aws_fixtures import AwsEnv, SageMakerEmulator
    from conftest import ProjectDir

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1"
WORKER = """\
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
Path(args.model_dir, "m.txt").write_text(str(args.hps))
"""

# A price file of round figures: 2 USD/h for ml.m5.large, 10 USD/h for ml.p3.2xlarge.
PRICES = {"regions": {"us-east-1": {"ml.m5.large": 2.0, "ml.p3.2xlarge": 10.0}}}


def sagemaker_project(project: ProjectDir, tasks: str) -> None:
    project.write("prices.json", json.dumps(PRICES))
    project.write("train.py", WORKER)
    project.ssmfile(
        f"""\
        [project]
        name = "demo"
        backend = "sagemaker"
        store = "s3://bucket"
        region = "us-east-1"
        prices = "prices.json"

        [defaults]
        entry_point = "train.py"
        image = {{ uri = "{IMAGE}" }}
        """
        + tasks
    )


SWEEP = """
[tasks.train]
matrix = { lr = [0.1, 0.2] }
instance_count = 2
max_run_mins = 30

[tasks.big]
instance_type = "ml.p3.2xlarge"
spot = false
max_run_mins = 60
"""


def test_the_shipped_table_names_its_source_and_date() -> None:
    prices = load_prices()

    assert prices.source.startswith("https://aws.amazon.com/sagemaker/pricing/")
    assert prices.date
    assert prices.hourly("ml.m5.large", "us-east-1") is not None


def test_dry_run_estimates_each_task_and_the_total(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    sagemaker_project(project, SWEEP)

    text = project.run("-n")
    doc = json.loads(project.run("-n", "--json").out)

    assert text.code == 0, text.err
    lines = text.out.splitlines()
    # 2 instances x 2 USD/h x 0.5 h (max_run_mins) = 2 USD each, an upper bound.
    assert lines[1] == (
        "    cost: up to $2.00 (2 x ml.m5.large, 30m 0s from max_run_mins), "
        "on-demand price: spot is usually cheaper"
    )
    # Each task: its state, its cost, then what its job would be.
    assert lines[2].startswith("    would run on sagemaker: ml.m5.large x 2, image ")
    assert lines[7] == "    cost: up to $10.00 (1 x ml.p3.2xlarge, 1h 0m from max_run_mins)"
    assert lines[-1].startswith("estimated cost: up to $14.00 for 3 jobs on sagemaker (us-east-1")
    estimates = {t["name"]: t["estimate"] for t in doc["tasks"]}
    assert estimates["train[lr=0.1]"] == {
        "usd": 2.0,
        "hours": 0.5,
        "upper_bound": True,
        "instance_type": "ml.m5.large",
        "instance_count": 2,
        "spot": True,
    }
    assert doc["estimate"]["usd"] == 14.0 and doc["estimate"]["upper_bound"] is True


def test_the_bill_comes_from_the_billable_time_and_feeds_the_next_estimate(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    sagemaker_project(project, SWEEP)
    sagemaker_emulator.times = (730, 243)

    result = project.run("--json", "train[lr=0.1]")

    assert result.code == 0, result.err
    [outcome] = json.loads(result.out)["tasks"]
    assert outcome["billing"]["usd"] == 0.27 and outcome["billing"]["saved_percent"] == 67
    # 243 s x 2 instances x 2 USD/h = 0.27 USD; spot saved 1 - 243/730 = 67%.
    assert "done in " in result.err
    assert "billed 4m 3s spot x 2 instances, $0.27 (saved 67%)" in result.err
    marker = json.loads(
        aws.client("s3")
        .get_object(Bucket="bucket", Key="demo/train-lr-0-1/ssmake.json")["Body"]
        .read()
    )
    assert marker["billing"]["training_seconds"] == 730
    assert marker["billing"]["billable_seconds"] == 243
    assert marker["billing"]["usd"] == 0.27
    record_key = f"demo/train-lr-0-1/runs/{marker['fingerprint']}.json"
    record = json.loads(aws.client("s3").get_object(Bucket="bucket", Key=record_key)["Body"].read())
    assert record["billing"] == marker["billing"]

    status = project.run("status", "--cost")
    assert "cost of the current results: $0.27 for 1 job" in status.out
    assert "rebuilding the stale tasks: estimated cost: up to $12.00 for 2 jobs" in status.out
    project.write("train.py", WORKER + "# changed\n")
    doc = json.loads(project.run("-n", "--json", "train[lr=0.1]").out)
    [estimate] = [t["estimate"] for t in doc["tasks"]]
    assert estimate["upper_bound"] is False and estimate["usd"] == 0.27


def test_max_cost_refuses_a_build_estimated_above_it(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    sagemaker_project(project, SWEEP)

    result = project.run("--max-cost", "5")
    dry = project.run("-n", "--max-cost", "5")
    within = project.run("-n", "--max-cost", "14")

    assert dry.code == 2 and "is above --max-cost $5.00" in dry.err
    assert within.code == 0, within.err
    assert result.code == 2
    assert (
        "the estimated cost, $14.00, is above --max-cost $5.00; nothing was started" in result.err
    )
    assert "  train[lr=0.1]  up to $2.00 (2 x ml.m5.large" in result.err
    assert "  big            up to $10.00 (1 x ml.p3.2xlarge" in result.err
    assert "  total          up to $14.00" in result.err
    assert sagemaker_emulator.requests == []


def test_max_cost_stops_launching_once_it_would_be_passed(
    project: ProjectDir, aws: AwsEnv, sagemaker_emulator: SageMakerEmulator
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    # Two jobs estimated at 1 USD each (0.5 h of ml.m5.large at most) fit in 2.50...
    sagemaker_project(
        project,
        """
[tasks.first]
max_run_mins = 30

[tasks.second]
max_run_mins = 30
""",
    )
    # ... but the first bills 3 hours (6 USD): the second is not launched.
    sagemaker_emulator.times = (3 * 3600, 3 * 3600)

    result = project.run("-j", "1", "--max-cost", "2.50")

    assert result.code == 1, result.err
    assert "first: done in" in result.err and "$6.00" in result.err
    assert (
        "second: not run: --max-cost $2.50: spent $6.00 + running $0.00 + its estimate $1.00 "
        "would pass it"
    ) in result.err
    assert "stopped at --max-cost: second not started (spent $6.00)" in result.err
    assert [r["TrainingJobName"].split("-")[0] for r in sagemaker_emulator.requests] == ["first"]


def test_the_local_backend_costs_nothing(project: ProjectDir) -> None:
    project.write("train.py", WORKER)
    project.ssmfile('[tasks.train]\nentry_point = "train.py"\n')

    plan = json.loads(project.run("-n", "--json").out)
    result = project.run()

    assert plan["tasks"][0]["estimate"]["usd"] == 0.0
    assert result.code == 0, result.err
    assert "train: done in " in result.err and ", $0 on local (job train-" in result.err
    status = project.run("status", "--cost")
    assert "cost of the current results: $0.00 for 1 job" in status.out


def test_a_bad_price_file_is_reported(project: ProjectDir) -> None:
    project.write("train.py", WORKER)
    project.write("prices.json", '{"ml.m5.large": "cheap"}')
    project.ssmfile('[project]\nprices = "prices.json"\n[tasks.train]\nentry_point = "train.py"\n')

    result = project.run("-n")
    project.ssmfile('[project]\nprices = "nope.json"\n[tasks.train]\nentry_point = "train.py"\n')
    missing = project.run("-n")

    assert result.code == 2
    assert "ml.m5.large: expected USD per hour as a number, got 'cheap'" in result.err
    assert missing.code == 2
    assert "project.prices: 'nope.json' not found" in missing.err
