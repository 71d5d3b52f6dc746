"""The Python API: `ssmake.Project`, and simple-sagemaker's `SageMakerProject` running the
README's single-file example."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ProjectDir

import ssmake
from ssmake.api import BuildFailed, Project
from ssmake.compat import SageMakerProject
from ssmake.errors import ConfigError, SsmakeError
from ssmake.events import Event, TaskDone, ignore_events
from ssmake.project.load import build_task

EXAMPLES = Path(__file__).resolve().parent.parent / "example_projects"

TWO_TASKS = """
[project]
name = "api"

[tasks.make]
entry_point = "make.py"
[tasks.use]
entry_point = "use.py"
inputs.made = { task = "make", output = "output" }
"""


@pytest.fixture
def two_tasks(project: ProjectDir) -> ProjectDir:
    project.ssmfile(TWO_TASKS)
    project.write(
        "make.py",
        "from pathlib import Path\nfrom worker_toolkit import worker_lib\n"
        "args = worker_lib.parseArgs()\n"
        "Path(args.output_data_dir, 'made.txt').write_text('made')\n",
    )
    project.write("use.py", "print('using')\n")
    return project


def test_project_plans_builds_and_reports_status(two_tasks: ProjectDir) -> None:
    events: list[Event] = []
    api = ssmake.Project(two_tasks.root, reporter=events.append)
    assert api.name == "api" and list(api.tasks) == ["make", "use"]

    plans = api.plan()
    assert [(p.name, p.state) for p in plans] == [("make", "stale"), ("use", "stale")]
    assert plans[1].reasons == ["upstream make will run first"]

    outcomes = api.build()

    assert [(o.task, o.status) for o in outcomes] == [("make", "done"), ("use", "done")]
    assert [e.task for e in events if isinstance(e, TaskDone)] == ["make", "use"]
    assert [p.state for p in api.status()] == ["up-to-date", "up-to-date"]
    assert [o.status for o in api.build(["use"])] == ["up-to-date", "up-to-date"]
    assert [o.status for o in api.build(["use"], force=True)] == ["up-to-date", "done"]
    assert api.result("make") is not None and api.result("make")["job"] == outcomes[0].job  # type: ignore[index]
    written = api.download("make", "got", ["output", "logs"])
    assert [p.name for p in written] == ["output", "logs"]
    assert (two_tasks.root / "got" / "output" / "made.txt").read_text() == "made"


def test_failed_build_raises_build_failed_with_every_outcome(two_tasks: ProjectDir) -> None:
    two_tasks.write("make.py", "raise SystemExit(2)\n")
    api = Project(two_tasks.root, reporter=ignore_events)

    with pytest.raises(BuildFailed) as caught:
        api.build()

    assert caught.value.exit_code == 1
    assert [(o.task, o.status) for o in caught.value.outcomes] == [
        ("make", "failed"),
        ("use", "blocked"),
    ]
    assert caught.value.message.startswith("make failed: task make: job make-")
    assert "use blocked: upstream make did not complete" in caught.value.message


def test_errors_are_ssmake_errors(two_tasks: ProjectDir) -> None:
    api = Project(two_tasks.root, reporter=ignore_events)
    with pytest.raises(ConfigError, match="unknown task 'mak'; did you mean 'make'"):
        api.build(["mak"])
    with pytest.raises(SsmakeError, match="task make of project api has no result"):
        api.download("make", "out")
    with pytest.raises(ConfigError, match="unknown backend 'cloud'"):
        Project(two_tasks.root, backend="cloud")


def test_from_tasks_reads_consumed_tasks_from_the_store(project: ProjectDir) -> None:
    project.write("w.py", "print('hi')\n")
    first = build_task("first", {"entry_point": "w.py"}, root=project.root)
    second = build_task(
        "second",
        {"entry_point": "w.py", "inputs": {"prev": {"task": "first", "output": "model"}}},
        root=project.root,
    )
    alone = Project.from_tasks("p", [second], backend="local", reporter=ignore_events)
    with pytest.raises(ConfigError, match="first has no completed run in project p"):
        alone.build()
    assert [(p.name, p.state) for p in alone.plan()] == [("second", "blocked")]

    Project.from_tasks("p", [first], backend="local", reporter=ignore_events).build()

    assert [p.state for p in alone.plan()] == ["stale"]
    assert [o.status for o in alone.build()] == ["done"]
    assert [p.state for p in alone.plan()] == ["up-to-date"]
    with pytest.raises(ConfigError, match="bad project name 'my project'"):
        Project.from_tasks("my project", [first], backend="local")


# -- simple-sagemaker's SageMakerProject ----------------------------------------


def load_example(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("single_file_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def single_file(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = project.root / "single_file"
    shutil.copytree(
        EXAMPLES / "single_file", root, ignore=shutil.ignore_patterns("output", ".ssmake")
    )
    monkeypatch.chdir(root)
    monkeypatch.setenv("SSMAKE_BACKEND", "local")
    return root


def test_readme_single_file_example_runs_with_only_its_import_changed(
    single_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = (single_file / "code" / "example.py").read_text()
    assert "from ssmake.compat import SageMakerProject" in source
    example = load_example(single_file / "code" / "example.py")

    sm_project = example.runner(output_path=single_file / "out")

    out1 = single_file / "out" / "output1"
    assert sorted(p.name for p in (out1 / "model").iterdir()) == [
        "output_algo-1",
        "output_algo-2",
        "sample_data1.txt_proc_by_algo-1",
        "sample_data2.txt_proc_by_algo-2",
    ]
    processed = (out1 / "model" / "sample_data2.txt_proc_by_algo-2").read_text()
    assert processed == "Sample data file 2 processed by algo-2"
    assert (out1 / "state" / "algo-2" / "state_algo-2").read_text() == "state"
    logs0 = (out1 / "logs" / "logs0").read_text()
    logs1 = (out1 / "logs" / "logs1").read_text()
    assert "INFO:__main__:Hyperparams: {'arg': 'hello world!', 'task': 1, 'worker': 1}" in logs0
    assert "input/data/data/sample_data1.txt')]" in logs0
    assert "input/data/data/sample_data2.txt')]" in logs1
    assert "INFO:worker_toolkit.worker_lib:Marking instance algo-2 completion" in logs1
    assert "INFO:__main__:finished!" in logs1
    # The README downloads task1's results again into output2.
    assert (single_file / "out" / "output2" / "model" / "output_algo-1").is_file()

    sm_project.downloadResults("task2", single_file / "task2", state=False)
    task2_logs = (single_file / "task2" / "logs" / "logs0").read_text()
    assert "Input task2_data: [PosixPath('" in task2_logs
    assert "input/data/task2_data/model.tar.gz')]" in task2_logs
    assert "input/data/task2_data_dist/model.tar.gz')]" in task2_logs
    # The Dockerfile's content takes part in the task (and its fingerprint).
    assert sm_project.tasks["task1"].dockerfile_content == example.dockerFileContent
    assert sm_project.tasks["task1"].image.repo == "task_repo"
    assert "[task2 algo-1] INFO:__main__:finished!" in capsys.readouterr().err


def test_run_task_skips_a_completed_task_unless_forced(single_file: Path) -> None:
    sm = SageMakerProject("compat", reporter=ignore_events)
    sm.setDefaultCodeParams(entry_point=str(single_file / "code" / "example.py"))
    image = sm.buildOrGetImage(instance_type="ml.m5.large")
    assert image == "local/pytorch"
    hps = {"worker": 1, "task": 1}

    outcome, job = sm.runTask("t", image, hyperparameters=hps, input_data_path="data")
    assert outcome.status == "done" and job == outcome.job

    again, same = sm.runTask("t", image, hyperparameters=hps, input_data_path="data")
    assert again.status == "up-to-date" and same == job
    forced, other = sm.runTask(
        "t", image, hyperparameters=hps, input_data_path="data", force_running=True
    )
    assert forced.status == "done" and other != job
    assert sm.cleanState("t") == 2  # state_algo-1 and algo-1/__COMPLETED__


def test_compat_inputs_images_and_errors(single_file: Path) -> None:
    sm = SageMakerProject("compat", reporter=ignore_events)
    sm.setDefaultCodeParams(source_dir="code", entry_point="example.py")
    sm.setDefaultImageParams(docker_file_path_or_content="docker", framework="tensorflow")
    assert sm.buildOrGetImage() == "local/tensorflow"

    with pytest.raises(ConfigError, match="task t1 of project compat isn't completed"):
        sm.getInputConfig("t1", "model")
    assert sm.getInputConfig("t1", "state", distribution="ShardedByS3Key") == {
        "task": "t1",
        "output": "state",
        "distribution": "ShardedByS3Key",
    }
    with pytest.raises(ConfigError, match="the output type is one of model, output, state"):
        sm.getInputConfig("t1", "source")
    with pytest.raises(ConfigError, match="unknown argument 'instance_cnt'"):
        sm.runTask("t1", None, instance_cnt=2)
    with pytest.raises(ConfigError, match="neither a directory with a Dockerfile"):
        sm.setDefaultImageParams(docker_file_path_or_content="no-such-dir")
        sm.runTask("t1")
    with pytest.warns(UserWarning, match="boto3_session"):
        SageMakerProject("compat", boto3_session=object())
    assert SageMakerProject("compat", local_mode=True, backend=None).backend == "local"


def test_compat_task_from_default_params(single_file: Path) -> None:
    (single_file / "code" / "noop.py").write_text("print('ok')\n")
    sm = SageMakerProject("compat", reporter=ignore_events)
    sm.setDefaultCodeParams(source_dir="code", entry_point="noop.py", dependencies=["docker"])
    sm.setDefaultInstanceParams(instance_count=2, use_spot=False, max_run_mins=15)
    sm.setDefaultImageParams(docker_file_path_or_content="docker", framework_version="1.6")

    sm.runTask(
        "t1",
        sm.buildOrGetImage(),
        hyperparameters={"worker": 1, "task": 2},
        additional_inputs={"extra": "data"},
        tags={"k": "v"},
        metric_definitions={"loss": "loss=(.*);"},
        enable_sagemaker_metrics=True,
        instance_type="ml.c5.xlarge",
    )

    task = sm.tasks["t1"]
    assert (task.source_dir, task.entry_point, task.dependencies) == (
        "code",
        "noop.py",
        ("docker",),
    )
    assert (task.instance_count, task.spot, task.max_run_mins) == (2, False, 15)
    assert task.instance_type == "ml.c5.xlarge"
    assert (task.dockerfile, task.framework_version) == ("docker", "1.6")
    assert task.inputs[0].name == "extra" and task.inputs[0].path == "data"
    assert (task.tags, task.metrics, task.enable_metrics) == (
        {"k": "v"},
        {"loss": "loss=(.*);"},
        True,
    )


def test_backend_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSMAKE_BACKEND", raising=False)
    assert SageMakerProject("p", bucket_name="bkt").store == "s3://bkt"
    monkeypatch.setenv("SSMAKE_BACKEND", "local")
    assert SageMakerProject("p", bucket_name="bkt").backend == "local"
    monkeypatch.setenv("SSMAKE_BACKEND", "nope")
    with pytest.raises(ConfigError, match="SSMAKE_BACKEND='nope' is not a backend"):
        SageMakerProject("p")
