"""`ssm`: simple-sagemaker's flags, flag by flag, and runs of one task on the local backend."""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from conftest import ProjectDir, Result

from ssmake.compat.cli import main
from ssmake.compat.flags import UsageError, build_parser
from ssmake.compat.mapping import task_from_args
from ssmake.project.model import Image, Input

BASE = ["-p", "proj", "-t", "task1", "-e", "worker.py"]


def parse(*extra: str, root: Path | None = None) -> Any:
    return task_from_args([*BASE, *extra], root=root)


def task_of(*extra: str) -> Any:
    return parse(*extra)[1]


def ssm(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def _no_backend_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSMAKE_BACKEND", raising=False)


# -- defaults -----------------------------------------------------------------


def test_defaults_are_simple_sagemakers() -> None:
    name, task, options = parse()

    assert name == "proj"
    assert task.name == "task1" and task.entry_point == "worker.py"
    assert task.source_dir is None and task.dependencies == ()
    assert task.instance_type == "ml.m5.large"
    assert task.instance_count == 1
    assert task.volume_size == 30
    assert task.spot is True
    assert task.max_wait_mins == 0 and task.max_run_mins == 1440
    assert task.framework == "pytorch"
    assert task.framework_version is None and task.python_version is None
    assert task.image == Image(tag="latest")
    assert task.dockerfile is None
    assert task.inputs == ()
    assert task.hyperparameters == {}
    assert task.metrics == {} and task.enable_metrics is False and task.tags == {}
    assert task.output_path is None and task.download == ()
    assert options.backend == "sagemaker"
    assert options.store == ""  # the account's default bucket
    assert not options.force_running and not options.clean_state


# -- flag by flag -------------------------------------------------------------

FIELD_FLAGS = [
    (["-s", "code"], "source_dir", "code"),
    (["--source_dir", "code"], "source_dir", "code"),
    (["-d", "lib1", "lib2"], "dependencies", ("lib1", "lib2")),
    (["--dependencies", "lib1"], "dependencies", ("lib1",)),
    (["--instance_type", "ml.p3.2xlarge"], "instance_type", "ml.p3.2xlarge"),
    (["--it", "ml.p3.2xlarge"], "instance_type", "ml.p3.2xlarge"),
    (["--instance_count", "3"], "instance_count", 3),
    (["--ic", "2"], "instance_count", 2),
    (["--volume_size", "50"], "volume_size", 50),
    (["-v", "50"], "volume_size", 50),
    (["--no_spot"], "spot", False),
    (["--use_spot"], "spot", True),
    (["--no_spot", "--use_spot"], "spot", True),
    (["--max_wait_mins", "2000"], "max_wait_mins", 2000),
    (["--max_run_mins", "15"], "max_run_mins", 15),
    (["--aws_repo", "repo"], "image", Image(repo="repo", tag="latest")),
    (["--ar", "repo"], "image", Image(repo="repo", tag="latest")),
    (["--repo_name", "local"], "image", Image(local_repo="local", tag="latest")),
    (["--rn", "local"], "image", Image(local_repo="local", tag="latest")),
    (["--image_tag", "v2"], "image", Image(tag="v2")),
    (["--docker_file_path", "docker"], "dockerfile", "docker"),
    (["--df", "docker"], "dockerfile", "docker"),
    (["--framework", "tensorflow"], "framework", "tensorflow"),
    (["-f", "tensorflow"], "framework", "tensorflow"),
    (["--framework_version", "2.3"], "framework_version", "2.3"),
    (["--fv", "2.3"], "framework_version", "2.3"),
    (["--python_version", "py37"], "python_version", "py37"),
    (["--pv", "py37"], "python_version", "py37"),
    (["--enable_sagemaker_metrics"], "enable_metrics", True),
    (["-m"], "enable_metrics", True),
    (["--metric_definitions", "Score", "Score=(.*?);"], "metrics", {"Score": "Score=(.*?);"}),
    (["--md", "a", "a=(.*)", "--md", "b", "b=(.*)"], "metrics", {"a": "a=(.*)", "b": "b=(.*)"}),
    (["--tag", "MyTag", "MyValue"], "tags", {"MyTag": "MyValue"}),
    (["--tag", "a", "1", "--tag", "b", "2"], "tags", {"a": "1", "b": "2"}),
    (["-o", "out"], "output_path", "out"),
    (["--output_path", "out"], "output_path", "out"),
    (["-o", "out"], "download", ("logs",)),
    (["-o", "out", "--download_state"], "download", ("state", "logs")),
    (["-o", "out", "--download_model"], "download", ("model", "logs")),
    (["-o", "out", "--download_output"], "download", ("output", "logs")),
    (
        ["-o", "out", "--download_output", "--download_state", "--download_model"],
        "download",
        ("model", "output", "state", "logs"),
    ),
]


@pytest.mark.parametrize(("flags", "field", "value"), FIELD_FLAGS, ids=lambda v: str(v))
def test_flag_sets_task_field(flags: list[str], field: str, value: object) -> None:
    assert getattr(task_of(*flags), field) == value


@pytest.mark.parametrize("flag", ["-p", "--project_name"])
def test_project_name(flag: str) -> None:
    name, _, _ = task_from_args([flag, "other", "-t", "t", "-e", "w.py"])
    assert name == "other"


@pytest.mark.parametrize(("flag", "entry"), [("-t", "-e"), ("--task_name", "--entry_point")])
def test_task_name_and_entry_point(flag: str, entry: str) -> None:
    _, task, _ = task_from_args(["-p", "p", flag, "train-2", entry, "train.py"])
    assert (task.name, task.entry_point) == ("train-2", "train.py")


@pytest.mark.parametrize("flag", ["-i", "--input_path"])
def test_input_path_is_the_data_channel(flag: str) -> None:
    assert task_of(flag, "data").inputs == (Input("data", path="data"),)
    sharded = task_of(flag, "data", "ShardedByS3Key").inputs
    assert sharded == (Input("data", path="data", distribution="ShardedByS3Key"),)
    assert task_of(flag, "s3://bucket/key").inputs == (Input("data", s3="s3://bucket/key"),)


@pytest.mark.parametrize("flag", ["--iis", "--input_s3"])
def test_input_s3_repeats(flag: str) -> None:
    task = task_of(flag, "a", "s3://bucket/a", flag, "b", "s3://bucket/b", "ShardedByS3Key")
    assert task.inputs == (
        Input("a", s3="s3://bucket/a"),
        Input("b", s3="s3://bucket/b", distribution="ShardedByS3Key"),
    )


def test_input_s3_with_a_local_path_is_synced_like_input_path() -> None:
    assert task_of("--iis", "persons", "persons").inputs == (Input("persons", path="persons"),)


@pytest.mark.parametrize("flag", ["--iit", "--input_task"])
def test_input_task_repeats(flag: str) -> None:
    task = task_of(flag, "m", "task0", "model", flag, "s", "task0", "state", "ShardedByS3Key")
    assert task.inputs == (
        Input("m", task="task0", output="model"),
        Input("s", task="task0", output="state", distribution="ShardedByS3Key"),
    )
    assert task.upstream() == ("task0",)


def test_inputs_of_all_kinds_together() -> None:
    task = task_of("-i", "data", "--iis", "b", "s3://bucket/k", "--iit", "t", "task0", "output")
    assert [i.name for i in task.inputs] == ["data", "b", "t"]
    assert [i.kind for i in task.inputs] == ["path", "s3", "task"]


@pytest.mark.parametrize(
    ("flags", "force", "clean"),
    [
        ([], False, False),
        (["--force_running"], True, False),
        (["--clean_state"], False, True),
        (["--cs"], False, True),
        (["--keep_state"], False, False),
        (["--ks"], False, False),
        (["--cs", "--ks"], False, False),
        (["--ks", "--cs"], False, True),
    ],
)
def test_running_options(flags: list[str], force: bool, clean: bool) -> None:
    _, _, options = parse(*flags)
    assert (options.force_running, options.clean_state) == (force, clean)


def test_backend_flag_env_and_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse("--backend", "local")[2].store == ".ssmake"
    assert parse("--backend", "sagemaker", "-b", "bkt")[2].store == "s3://bkt"
    assert parse("--bucket_name", "bkt")[2].store == "s3://bkt"
    assert parse("-b", "bkt", "--store", "s3://other/pre")[2].store == "s3://other/pre"
    monkeypatch.setenv("SSMAKE_BACKEND", "local")
    _, _, options = parse("-b", "bkt")
    assert (options.backend, options.store) == ("local", ".ssmake")
    assert "-b bkt is the store of the sagemaker backend" in options.warnings[0]
    assert parse("--store", "/tmp/st")[2].store == "/tmp/st"
    assert parse("--backend", "sagemaker")[2].backend == "sagemaker"


# -- hyperparameters -----------------------------------------------------------


def test_extra_arguments_are_hyperparameters_with_json_scalars() -> None:
    task = task_of(
        *("--task_type", "1", "--msg", "Hello, world!", "--lr", "0.5", "--neg", "-2"),
        *("--flag", "true", "--off", "false", "--eq=3", "--zip", "01", "--none", "null"),
    )
    assert task.hyperparameters == {
        "task_type": 1,
        "msg": "Hello, world!",
        "lr": 0.5,
        "neg": -2,
        "flag": True,
        "off": False,
        "eq": 3,
        "zip": "01",
        "none": "null",
    }


def test_hyperparameters_mix_with_flags_in_any_order() -> None:
    task = task_of("--task_type", "2", "-i", "data", "ShardedByS3Key", "--x", "y", "--ic", "2")
    assert task.hyperparameters == {"task_type": 2, "x": "y"}
    assert task.instance_count == 2 and task.inputs[0].distribution == "ShardedByS3Key"


def test_a_hyperparameter_is_never_an_abbreviated_flag() -> None:
    # --task would abbreviate --task_name with argparse's default.
    task = task_of("--task", "1", "--entry", "x", "--instance", "3")
    assert task.name == "task1"
    assert task.hyperparameters == {"task": 1, "entry": "x", "instance": 3}


def test_a_hyperparameter_close_to_a_flag_warns() -> None:
    _, task, options = parse("--instance_cont", "2")
    assert task.hyperparameters == {"instance_cont": 2}
    assert "did you mean --instance_count?" in options.warnings[0]


def test_later_simple_sagemaker_run_subcommand_is_accepted() -> None:
    name, task, _ = task_from_args(["run", *BASE, "--ic", "2"])
    assert (name, task.instance_count) == ("proj", 2)


# -- usage errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-t", "t", "-e", "w.py"], "required: --project_name/-p"),
        (["-p", "p", "-e", "w.py"], "required: --task_name/-t"),
        (["-p", "p", "-t", "t"], "required: --entry_point/-e"),
        ([*BASE, "--ic", "two"], "argument --instance_count/--ic: invalid int value: 'two'"),
        ([*BASE, "--ic", "0"], "--ic/--instance_count: must be at least 1, got 0"),
        ([*BASE, "--it", "large"], "--it/--instance_type: 'large' is not a SageMaker instance"),
        ([*BASE, "-f", "jax"], "argument --framework/-f: invalid choice: 'jax'"),
        ([*BASE, "-i", "a", "-i", "b"], "can be given once; add more inputs with --iis"),
        ([*BASE, "-i", "data", "Sharded"], "distribution 'Sharded' is not one of"),
        ([*BASE, "--iis", "b"], "expected NAME URI [DISTRIBUTION], got 'b'"),
        ([*BASE, "--iit", "a", "t", "weights"], "--iit a t weights: the type is one of model"),
        ([*BASE, "--iis", "x", "s3://b/k", "--iit", "x", "t", "model"], "input 'x' is already"),
        ([*BASE, "--iis", "bad name", "s3://b/k"], "--iis bad name: bad channel name"),
        ([*BASE, "--iis", "b", "s3://B"], "--iis b: 's3://B' is not an S3 URI"),
        ([*BASE, "--md", "loss", "no group"], "--md/--metric_definitions loss: regex"),
        ([*BASE, "--tag", "ssmake:x", "1"], "--tag ssmake:x: tag keys starting with"),
        ([*BASE, "--lonely"], "--lonely is not an ssm flag, and as a hyperparameter it needs"),
        ([*BASE, "stray"], "unrecognized argument: stray; hyperparameters are --NAME VALUE"),
        ([*BASE, "--download_model"], "--download_model: needs -o/--output_path"),
        ([*BASE, "--max_wait_mins", "5"], "--max_wait_mins: must be at least max_run_mins"),
        (["-p", "p", "-t", "t_1", "-e", "w.py"], "-t/--task_name: bad task name 't_1'"),
        (["-p", "p", "-t", "t", "-e", "/abs/w.py", "-s", "code"], "-e/--entry_point: must be"),
    ],
)
def test_bad_flags_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        task_from_args(argv)
    assert message in caught.value.message


def test_files_are_checked_against_the_root(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "w.py").write_text("")
    _, task, _ = task_from_args(["-p", "p", "-t", "t", "-s", "code", "-e", "w.py"], root=tmp_path)
    assert task.source_dir == "code"
    # An absolute entry point inside source_dir is taken relative to it.
    absolute = str(tmp_path / "code" / "w.py")
    argv = ["-p", "p", "-t", "t", "-s", str(tmp_path / "code"), "-e", absolute]
    assert task_from_args(argv, root=tmp_path)[1].entry_point == "w.py"
    with pytest.raises(UsageError, match=r"-e/--entry_point: 'code/nope.py' not found"):
        task_from_args(["-p", "p", "-t", "t", "-s", "code", "-e", "nope.py"], root=tmp_path)
    with pytest.raises(UsageError, match=r"-i data: 'data' not found"):
        task_from_args(["-p", "p", "-t", "t", "-e", absolute, "-i", "data"], root=tmp_path)
    with pytest.raises(UsageError, match=r"--df/--docker_file_path: directory 'docker' not"):
        task_from_args(["-p", "p", "-t", "t", "-e", absolute, "--df", "docker"], root=tmp_path)


# Every flag of simple-sagemaker's `ssm -h`, with its other names; then ssmake's own.
SSM_FLAGS = [
    ("--project_name", "-p"),
    ("--task_name", "-t"),
    ("--bucket_name", "-b"),
    ("--source_dir", "-s"),
    ("--entry_point", "-e"),
    ("--dependencies", "-d"),
    ("--instance_type", "--it"),
    ("--instance_count", "--ic"),
    ("--volume_size", "-v"),
    ("--no_spot",),
    ("--use_spot",),
    ("--max_wait_mins",),
    ("--max_run_mins",),
    ("--aws_repo", "--ar"),
    ("--repo_name", "--rn"),
    ("--image_tag",),
    ("--docker_file_path", "--df"),
    ("--framework", "-f"),
    ("--framework_version", "--fv"),
    ("--python_version", "--pv"),
    ("--input_path", "-i"),
    ("--input_s3", "--iis"),
    ("--input_task", "--iit"),
    ("--force_running",),
    ("--clean_state", "--cs"),
    ("--keep_state", "--ks"),
    ("--metric_definitions", "--md"),
    ("--enable_sagemaker_metrics", "-m"),
    ("--tag",),
    ("--output_path", "-o"),
    ("--download_state",),
    ("--download_model",),
    ("--download_output",),
    ("--backend",),
    ("--store",),
]


def test_help_lists_every_simple_sagemaker_flag() -> None:
    text = build_parser().format_help()
    for names in SSM_FLAGS:
        for flag in names:
            assert re.search(rf"(?<![\w-]){flag}(?![\w-])", text), flag


# -- end to end, on the local backend -------------------------------------------

COUNTER = """
import json, sys
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
state = Path(worker_lib.initMultiWorkersState(args))
runs = int((state / "runs").read_text()) if (state / "runs").exists() else 0
(state / "runs").write_text(str(runs + 1))
Path(args.model_dir, f"model-{args.current_host}").write_text(json.dumps(args.hps))
Path(args.output_data_dir, f"out-{args.current_host}").write_text(str(runs + 1))
print("run", runs + 1, "on", args.current_host, "argv", sys.argv[1:])
"""


@pytest.fixture
def local(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> ProjectDir:
    monkeypatch.setenv("SSMAKE_BACKEND", "local")
    project.write("worker.py", COUNTER)
    return project


def launched(result: Result) -> int:
    return result.err.count("launched job")


def test_run_then_rerun_is_a_no_op_and_a_code_change_reruns(local: ProjectDir) -> None:
    first = ssm(*BASE, "--msg", "Hello, world!", "--n", "2")

    assert first.code == 0, first.err
    assert launched(first) == 1
    # As SageMaker passes them: a one-letter name is -n.
    assert "argv ['--msg', 'Hello, world!', '-n', '2']" in first.err
    assert first.out.startswith("task1: done (job task1-")
    marker = json.loads(local.store("proj", "task1", "ssmake.json").read_text())

    again = ssm(*BASE, "--msg", "Hello, world!", "--n", "2")

    assert again.code == 0 and launched(again) == 0
    assert f"task1: already completed, not run again (job {marker['job']})" in again.out

    assert launched(ssm(*BASE, "--msg", "Hello, world!", "--n", "3")) == 1  # parameters
    local.write("worker.py", COUNTER + "\n# changed\n")
    assert launched(ssm(*BASE, "--msg", "Hello, world!", "--n", "3")) == 1  # code


def test_force_running_reruns_and_keeps_the_state(local: ProjectDir) -> None:
    assert ssm(*BASE).code == 0

    forced = ssm(*BASE, "--force_running")

    assert forced.code == 0 and launched(forced) == 1
    assert (local.store("proj", "task1", "state", "algo-1", "runs")).read_text() == "2"


def test_clean_state_clears_the_state_and_reruns(local: ProjectDir) -> None:
    assert ssm(*BASE).code == 0
    assert ssm(*BASE, "--force_running").code == 0

    cleaned = ssm(*BASE, "--cs")

    assert cleaned.code == 0 and launched(cleaned) == 1
    assert "task1: state cleared" in cleaned.err
    assert (local.store("proj", "task1", "state", "algo-1", "runs")).read_text() == "1"
    assert launched(ssm(*BASE, "--ks")) == 0


def test_output_path_layout_with_every_download_flag(local: ProjectDir) -> None:
    result = ssm(
        *BASE,
        *("--ic", "2", "--x", "1", "-o", "out", "--download_state"),
        *("--download_model", "--download_output"),
    )

    assert result.code == 0, result.err
    out = local.root / "out"
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["logs0", "logs1"]
    assert "run 1 on algo-2" in (out / "logs" / "logs1").read_text()
    assert sorted(p.name for p in (out / "model").iterdir()) == ["model-algo-1", "model-algo-2"]
    assert json.loads((out / "model" / "model-algo-1").read_text()) == {"x": 1}
    assert [p.name for p in (out / "output").iterdir()] == ["out-algo-1"]
    assert (out / "state" / "algo-2" / "runs").read_text() == "1"

    logs_only = ssm(*BASE, "--ic", "2", "--x", "1", "-o", "logs-only")

    assert launched(logs_only) == 0
    assert sorted(p.name for p in (local.root / "logs-only").iterdir() if p.is_dir()) == ["logs"]


READER = """
import tarfile
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
with tarfile.open(Path(args.input_prev) / "model.tar.gz") as tar:
    names = sorted(m.name for m in tar.getmembers() if m.isfile())
state = Path(args.input_st)
states = sorted(str(p.relative_to(state)) for p in state.rglob("*") if p.is_file())
Path(args.model_dir, "seen").write_text(repr((names, states)))
"""


def test_input_task_consumes_another_tasks_outputs(local: ProjectDir) -> None:
    local.write("reader.py", READER)
    assert ssm(*BASE, "--ic", "2").code == 0
    reader = ["-p", "proj", "-t", "task2", "-e", "reader.py", "-o", "out2", "--download_model"]
    chained = [*reader, "--iit", "prev", "task1", "model", "--iit", "st", "task1", "state"]

    result = ssm(*chained)

    assert result.code == 0, result.err
    seen = (local.root / "out2" / "model" / "seen").read_text()
    assert seen == repr((["model-algo-1", "model-algo-2"], ["algo-1/runs", "algo-2/runs"]))
    assert launched(ssm(*chained)) == 0
    # New outputs upstream make the consumer stale.
    assert ssm(*BASE, "--ic", "2", "--force_running").code == 0
    again = ssm(*chained)
    assert launched(again) == 1, again.err


def test_input_task_without_a_completed_upstream_is_an_error(local: ProjectDir) -> None:
    result = ssm(*BASE, "--iit", "prev", "nothing-yet", "model")

    assert result.code == 2
    assert (
        "ssm: error: task task1 consumes the model of task nothing-yet (input prev)" in result.err
    )
    assert "run nothing-yet first" in result.err


def test_bad_flag_exits_2_with_a_message_and_no_traceback(local: ProjectDir) -> None:
    result = ssm(*BASE, "--ic", "0")

    assert result.code == 2
    assert "ssm: error: --ic/--instance_count: must be at least 1, got 0" in result.err
    assert "usage: ssm -p PROJECT_NAME" in result.err
    assert "Traceback" not in result.err
    assert not (local.root / ".ssmake").exists()


def test_help_exits_0(local: ProjectDir) -> None:
    result = ssm("-h")
    assert result.code == 0 and "--input_task" in result.out


def test_failing_job_exits_1_and_leaves_no_marker(local: ProjectDir) -> None:
    local.write("boom.py", "raise SystemExit(4)\n")

    result = ssm("-p", "proj", "-t", "boom", "-e", "boom.py")

    assert result.code == 1
    assert "ssm: error: boom failed: task boom: job boom-" in result.err
    assert not local.store("proj", "boom", "ssmake.json").exists()


def test_store_flag_puts_the_store_elsewhere(local: ProjectDir, tmp_path: Path) -> None:
    store = tmp_path / "elsewhere"
    assert ssm(*BASE, "--store", str(store)).code == 0
    assert (store / "proj" / "task1" / "ssmake.json").is_file()
    assert not (local.root / ".ssmake" / "proj").exists()
