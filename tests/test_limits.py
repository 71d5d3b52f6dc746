"""SageMaker's limits, and what else SageMaker or the system would refuse, found when
the Ssmfile is loaded: exit 2, file:line, the key, what to do; nothing runs."""

from __future__ import annotations

import os

import pytest
from conftest import ProjectDir
from sagemaker_limits_source import limits_from_botocore

from ssmake.project.sagemaker_limits import LIMITS


def test_the_limits_table_matches_botocores_service_model() -> None:
    # Fails after a botocore upgrade changed a limit: run tests/sagemaker_limits_source.py.
    assert limits_from_botocore() == LIMITS


def task(extra: str, name: str = "train") -> str:
    return f'[tasks.{name}]\nentry_point = "train.py"\n{extra}\n'


def table(key: str, count: int, value: str = '"v"', prefix: str = "k") -> str:
    entries = ", ".join(f"{prefix}{i} = {value}" for i in range(count))
    return f"{key} = {{ {entries} }}"


LONG = "x" * 2501
# (case, Ssmfile, what the error must say)
CASES: list[tuple[str, str, str]] = [
    (
        "task name too long for a job name",
        task("", "t" * 49),
        f"Ssmfile.toml:1: tasks.{'t' * 49}: task name '{'t' * 49}' has 49 characters; at most 48",
    ),
    (
        "task name with a leading dash",
        task("", "-train"),
        "Ssmfile.toml:1: tasks.-train: task name '-train' begins with '-' (read as an option)",
    ),
    (
        "too many hyperparameters with ssmake's own",
        task(table("hyperparameters", 96, "1")),
        "Ssmfile.toml:3: tasks.train.hyperparameters: 96 entries; SageMaker takes at most 95 "
        "(ssmake adds 5 of its own)",
    ),
    (
        "hyperparameter value too long",
        task(f'hyperparameters = {{ note = "{LONG}" }}'),
        "tasks.train.hyperparameters.note: value has 2503 characters; SageMaker takes at most 2500",
    ),
    (
        "hyperparameter name too long",
        task(f"hyperparameters = {{ {'k' * 257} = 1 }}"),
        "name has 257 characters; SageMaker takes at most 256",
    ),
    (
        "hyperparameters that collide as SM_HP_",
        task("hyperparameters = { lr = 1, LR = 2 }"),
        "tasks.train.hyperparameters.LR: 'LR' clashes with 'lr' (both are SM_HP_LR to the job)",
    ),
    (
        "a reserved sagemaker_ hyperparameter",
        task("hyperparameters = { sagemaker_program = 1 }"),
        "tasks.train.hyperparameters.sagemaker_program: names starting with 'sagemaker_' are "
        "SageMaker's own",
    ),
    (
        "too many tags with ssmake's own",
        task(table("tags", 48)),
        "tasks.train.tags: 48 entries; SageMaker takes at most 47 (ssmake adds 3 of its own)",
    ),
    (
        "tag key too long",
        task(f'tags = {{ {"k" * 129} = "v" }}'),
        "name has 129 characters; SageMaker takes at most 128",
    ),
    (
        "tag value too long",
        task(f'tags = {{ team = "{"v" * 257}" }}'),
        "tasks.train.tags.team: value has 257 characters; SageMaker takes at most 256",
    ),
    (
        "tag value with a character AWS refuses",
        task('tags = { team = "a,b" }'),
        "tasks.train.tags.team: tag value has ',', which AWS refuses",
    ),
    (
        "too many environment variables",
        task(table("environment", 100, prefix="V")),
        "tasks.train.environment: 100 entries; SageMaker takes at most 99 (ssmake adds 1",
    ),
    (
        "environment value too long",
        task(f'environment = {{ V = "{"v" * 513}" }}'),
        "tasks.train.environment.V: value has 513 characters; SageMaker takes at most 512",
    ),
    (
        "too many metric definitions",
        task(table("metrics", 41, '"m=(.*)"')),
        "tasks.train.metrics: 41 entries; SageMaker takes at most 40",
    ),
    (
        "metric regex too long",
        task(f'metrics = {{ loss = "loss=(.*){"x" * 500}" }}'),
        "tasks.train.metrics.loss: value has 509 characters; SageMaker takes at most 500",
    ),
    (
        "max_run over 28 days",
        task("max_run_mins = 40321"),
        "Ssmfile.toml:3: tasks.train.max_run_mins: must be at most 40320 minutes (28 days)",
    ),
    (
        "instance_count overflowing the API's integers",
        task("instance_count = 99999999999999999999"),
        "tasks.train.instance_count: must be at most 2147483647, got 99999999999999999999",
    ),
    (
        "volume_size overflowing",
        task("volume_size = 9223372036854775807"),
        "tasks.train.volume_size: must be at most 2147483647 GB",
    ),
    (
        "max_wait below max_run on spot",
        task("max_run_mins = 60\nmax_wait_mins = 30"),
        "tasks.train.max_wait_mins: must be at least max_run_mins (60) for a spot job",
    ),
    (
        "a NUL byte in a string",
        task('hyperparameters = { a = "x\\u0000y" }'),
        "Ssmfile.toml:3: tasks.train.hyperparameters.a: contains a NUL character (\\u0000)",
    ),
    (
        "a NUL byte in a key",
        task('environment = { "A\\u0000" = "x" }'),
        "the key contains a NUL character (\\u0000); remove it",
    ),
    (
        "nested deeper than an Ssmfile needs",
        task(f"hyperparameters = {{ a = {'[' * 40}{']' * 40} }}"),
        "Ssmfile.toml:3: tasks.train.hyperparameters.a: nested more than 32 levels deep",
    ),
    (
        "nested so deep the TOML parser recurses",
        task(f"hyperparameters = {{ a = {'[' * 5000}{']' * 5000} }}"),
        "Ssmfile.toml: arrays or tables nested too deeply to read",
    ),
]


@pytest.mark.parametrize(("text", "message"), [pytest.param(t, m, id=c) for c, t, m in CASES])
def test_what_sagemaker_would_refuse_fails_the_load(
    project: ProjectDir, text: str, message: str
) -> None:
    project.write("train.py", "pass\n")
    (project.root / "Ssmfile.toml").write_text(text)

    result = project.run("-n")

    assert result.code == 2, result.err
    assert result.err.startswith("ssmake: error: "), result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert not project.store().exists()


def test_limits_are_met_by_a_task_at_them(project: ProjectDir) -> None:
    project.write("train.py", "pass\n")
    extras = "\n".join(
        [
            table("hyperparameters", 95, "1"),
            table("tags", 47),
            table("environment", 99, prefix="V"),
            table("metrics", 40, '"m=(.*)"'),
            "max_run_mins = 40320",
        ]
    )
    project.ssmfile(task(extras, "t" * 48))

    result = project.run("-n")

    assert result.code == 0, result.err


@pytest.mark.parametrize("kind", ["symlink loop", "directory", "unreadable"])
def test_an_ssmfile_that_cannot_be_read_is_a_clear_error(project: ProjectDir, kind: str) -> None:
    path = project.root / "Ssmfile.toml"
    if kind == "symlink loop":
        path.symlink_to(path)
        message = "cannot read it (a symlink loop); fix it or name another with -f FILE"
    elif kind == "directory":
        path.mkdir()
        message = "Ssmfile.toml: is a directory, not an Ssmfile; name the file with -f FILE"
    else:
        if os.geteuid() == 0:
            pytest.skip("root reads a file whatever its mode: run as another user to test this")
        path.write_text(task(""))
        path.chmod(0)
        message = "cannot read it (Permission denied)"

    for command in ("run", "status"):
        result = project.run(command)
        assert result.code == 2, result.err
        assert message in result.err
        assert "Traceback" not in result.err
