"""Loading and validating Ssmfiles, on real files in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssmake.errors import ConfigError
from ssmake.project.load import build_task, load_project
from ssmake.project.model import Image, Input, Task
from ssmake.project.task_table import SUBCOMMANDS, TASK_KEYS
from ssmake.project.tomlpos import Locator, format_key

DESIGN_EXAMPLE = """\
[project]
name = "demo"              # default: directory name
backend = "local"          # local (default) | sagemaker
store = ".ssmake"
region = "us-east-1"
default = ["train"]

[defaults]                 # every task key may appear here and is inherited
instance_type = "ml.m5.large"
framework = "pytorch"
hyperparameters = { epochs = 3, task_type = 0 }
tags = { Team = "ml" }

[tasks.prepare]
source_dir = "code"                    # optional; entry_point is relative to it
entry_point = "worker6.py"             # required
dependencies = ["external_dependency"] # extra code dirs, packed beside the source
requirements = "code/requirements.txt"
dockerfile = "."                       # dir with a Dockerfile using FROM __BASE_IMAGE__
image = { repo = "task6_repo" }
instance_count = 2
spot = false
hyperparameters = { task_type = 1 }
inputs.data = { path = "data", distribution = "ShardedByS3Key" }
inputs.persons = { s3 = "s3://awsglue-datasets/examples/us-legislators/all/persons.json" }
download = ["model", "output", "logs"]
output_path = "output/prepare"

[tasks.train]
entry_point = "code/worker6.py"
inputs.prev_model = { task = "prepare", output = "model" }   # makes train depend on prepare
inputs.prev_state = { task = "prepare", output = "state", distribution = "ShardedByS3Key" }
framework = "tensorflow"
metrics = { Score = "Score=(.*?);" }
enable_metrics = true
tags = { MyTag = "MyValue" }
environment = { MY_FLAG = "1" }
after = []
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with the files the Ssmfiles below name; the cwd."""
    project = tmp_path / "demo"
    for directory in ("code", "external_dependency", "data", "docker", "nodocker"):
        (project / directory).mkdir(parents=True)
    for name in (
        "code/worker6.py",
        "code/requirements.txt",
        "train.py",
        "external_dependency/x.py",
    ):
        (project / name).write_text("")
    (project / "Dockerfile").write_text("FROM __BASE_IMAGE__\n")
    (project / "docker" / "Dockerfile").write_text("FROM __BASE_IMAGE__\n")
    monkeypatch.chdir(project)
    return project


def write(root: Path, *lines: str) -> None:
    """Write an Ssmfile whose line N is lines[N-1], so expected line numbers read off."""
    (root / "Ssmfile.toml").write_text("\n".join(lines) + "\n")


def load_error(root: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    return caught.value


def test_design_example_loads(root: Path) -> None:
    (root / "Ssmfile.toml").write_text(DESIGN_EXAMPLE)

    project = load_project(root)

    assert (project.name, project.backend, project.store) == ("demo", "local", ".ssmake")
    assert (project.region, project.default, project.root) == ("us-east-1", ("train",), root)
    assert list(project.tasks) == ["prepare", "train"]
    assert project.tasks["prepare"] == Task(
        name="prepare",
        source_dir="code",
        entry_point="worker6.py",
        dependencies=("external_dependency",),
        requirements="code/requirements.txt",
        dockerfile=".",
        image=Image(repo="task6_repo"),
        instance_type="ml.m5.large",
        instance_count=2,
        spot=False,
        framework="pytorch",
        hyperparameters={"epochs": 3, "task_type": 1},
        tags={"Team": "ml"},
        inputs=(
            Input(name="data", path="data", distribution="ShardedByS3Key"),
            Input(
                name="persons",
                s3="s3://awsglue-datasets/examples/us-legislators/all/persons.json",
            ),
        ),
        download=("model", "output", "logs"),
        output_path="output/prepare",
    )
    train = project.tasks["train"]
    assert train == Task(
        name="train",
        entry_point="code/worker6.py",
        inputs=(
            Input(name="prev_model", task="prepare", output="model"),
            Input(name="prev_state", task="prepare", output="state", distribution="ShardedByS3Key"),
        ),
        instance_type="ml.m5.large",
        framework="tensorflow",
        hyperparameters={"epochs": 3, "task_type": 0},
        metrics={"Score": "Score=(.*?);"},
        enable_metrics=True,
        tags={"Team": "ml", "MyTag": "MyValue"},
        environment={"MY_FLAG": "1"},
    )
    assert train.upstream() == ("prepare",)


def test_defaults_fill_in_what_a_task_leaves_out(root: Path) -> None:
    write(
        root,
        "[defaults]",
        'source_dir = "code"',
        'entry_point = "worker6.py"',
        "spot = false",
        'environment = { A = "1", B = "2" }',
        "[tasks.a]",
        "[tasks.b]",
        'entry_point = "train.py"',
        "source_dir = '.'",
        'environment = { B = "3" }',
    )

    project = load_project(root)

    a, b = project.tasks["a"], project.tasks["b"]
    assert (a.source_dir, a.entry_point, a.spot) == ("code", "worker6.py", False)
    assert a.requirements == "code/requirements.txt"  # found in source_dir
    assert a.environment == {"A": "1", "B": "2"}
    assert b.environment == {"A": "1", "B": "3"}


def test_input_shorthand_and_default_settings(root: Path) -> None:
    write(
        root,
        "[tasks.train]",
        'entry_point = "train.py"',
        'inputs = { data = "data", remote = "s3://my-bucket/prefix/", "x.y-z_1" = "data" }',
    )

    project = load_project(root)

    assert project.name == "demo"  # the directory's name
    assert (project.backend, project.store, project.region, project.default) == (
        "local",
        ".ssmake",
        None,
        (),
    )
    assert project.tasks["train"].inputs == (
        Input(name="data", path="data"),
        Input(name="remote", s3="s3://my-bucket/prefix/"),
        Input(name="x.y-z_1", path="data"),
    )
    assert project.tasks["train"].requirements is None  # no source_dir: nothing inferred


def test_sagemaker_store_defaults_to_the_account_bucket(root: Path) -> None:
    write(root, "[project]", 'backend = "sagemaker"', "[tasks.train]", 'entry_point = "train.py"')

    assert load_project(root).store == ""


def test_explicit_ssmfile_path(root: Path, tmp_path: Path) -> None:
    other = root / "other.toml"
    other.write_text('[tasks.t]\nentry_point = "nope.py"\n')

    with pytest.raises(ConfigError) as caught:
        load_project(root, other)

    assert str(caught.value).startswith("other.toml:2: tasks.t.entry_point: 'nope.py' not found")


def test_missing_ssmfile(root: Path) -> None:
    error = load_error(root)

    assert "Ssmfile.toml: not found; create one with 'ssmake init'" in str(error)
    assert error.exit_code == 2


TASK = ("[tasks.train]", 'entry_point = "train.py"')
PREPARE = ("[tasks.prepare]", 'entry_point = "train.py"')

BAD_CONFIGS: list[tuple[str, tuple[str, ...], str]] = [
    (
        "toml syntax",
        ("[tasks.train]", "entry_point = "),
        "Ssmfile.toml:2:15: invalid TOML: Invalid value",
    ),
    (
        "unknown top key",
        ("[task.train]", 'entry_point = "train.py"'),
        "Ssmfile.toml:1: task: unknown key; did you mean 'tasks'?",
    ),
    (
        "unknown task key",
        ("[tasks.train]", 'entrypoint = "train.py"'),
        "Ssmfile.toml:2: tasks.train.entrypoint: unknown key; did you mean 'entry_point'?",
    ),
    (
        "unknown input key",
        (*TASK, 'inputs.data = { path = "data", distrib = "ShardedByS3Key" }'),
        "Ssmfile.toml:3: tasks.train.inputs.data.distrib: unknown key; "
        "did you mean 'distribution'?",
    ),
    (
        "unknown defaults key",
        ("[defaults]", 'instance_typ = "ml.m5.large"', *TASK),
        "Ssmfile.toml:2: defaults.instance_typ: unknown key; did you mean 'instance_type'?",
    ),
    (
        "unknown image key",
        (*TASK, 'image = { uri = "x", tga = "1" }'),
        "Ssmfile.toml:3: tasks.train.image.tga: unknown key; did you mean 'tag'?",
    ),
    (
        "wrong type int",
        (*TASK, 'instance_count = "2"'),
        "Ssmfile.toml:3: tasks.train.instance_count: expected an integer, got string '2'",
    ),
    (
        "wrong type bool",
        (*TASK, 'spot = "yes"'),
        "Ssmfile.toml:3: tasks.train.spot: expected a boolean (true or false, unquoted), "
        "got string 'yes'",
    ),
    (
        "wrong type string",
        (*TASK, "framework_version = 2.1"),
        "Ssmfile.toml:3: tasks.train.framework_version: expected a string, got float 2.1; "
        'quote it: "2.1"',
    ),
    (
        "wrong type table",
        (*TASK, 'image = "repo"'),
        "Ssmfile.toml:3: tasks.train.image: expected a table, got string 'repo'",
    ),
    (
        "wrong type in a dotted key at top level",
        ("tasks.train.entry_point = 3",),
        "Ssmfile.toml:1: tasks.train.entry_point: expected a string, got integer 3",
    ),
    (
        "instance_count 0",
        (*TASK, "instance_count = 0"),
        "Ssmfile.toml:3: tasks.train.instance_count: must be at least 1, got 0",
    ),
    (
        "bad value from defaults",
        ("[defaults]", "volume_size = -1", *TASK),
        "Ssmfile.toml:2: defaults.volume_size: must be at least 1, got -1",
    ),
    (
        "bad instance type",
        (*TASK, 'instance_type = "m5.large"'),
        "Ssmfile.toml:3: tasks.train.instance_type: 'm5.large' is not a SageMaker instance type",
    ),
    (
        "max_wait below max_run on spot",
        (*TASK, "max_wait_mins = 60", "max_run_mins = 120"),
        "Ssmfile.toml:3: tasks.train.max_wait_mins: must be at least max_run_mins (120)",
    ),
    (
        "bad framework",
        (*TASK, 'framework = "jax"'),
        "Ssmfile.toml:3: tasks.train.framework: 'jax' is not one of pytorch, tensorflow",
    ),
    (
        "bad distribution",
        (*TASK, 'inputs.data = { path = "data", distribution = "Sharded" }'),
        "Ssmfile.toml:3: tasks.train.inputs.data.distribution: "
        "'Sharded' is not one of FullyReplicated, ShardedByS3Key",
    ),
    (
        "bad distribution under a sub-table header",
        (*TASK, "", "[tasks.train.inputs.data]", 'path = "data"', "distribution = 'x'"),
        "Ssmfile.toml:6: tasks.train.inputs.data.distribution: 'x' is not one of",
    ),
    (
        "input with path and s3",
        (*TASK, 'inputs.data = { path = "data", s3 = "s3://bucket/key" }'),
        "Ssmfile.toml:3: tasks.train.inputs.data: needs exactly one of path, s3 and task, "
        "got path and s3",
    ),
    (
        "input with no source",
        (*TASK, 'inputs.data = { distribution = "ShardedByS3Key" }'),
        "Ssmfile.toml:3: tasks.train.inputs.data: needs exactly one of path, s3 and task",
    ),
    (
        "input of the wrong type",
        (*TASK, "inputs.data = 3"),
        "Ssmfile.toml:3: tasks.train.inputs.data: expected a table or a string, got integer 3",
    ),
    (
        "bad output kind",
        (*PREPARE, *TASK, 'inputs.m = { task = "prepare", output = "weights" }'),
        "Ssmfile.toml:5: tasks.train.inputs.m.output: 'weights' is not one of model, output, state",
    ),
    (
        "output on a path input",
        (*TASK, 'inputs.data = { path = "data", output = "model" }'),
        "Ssmfile.toml:3: tasks.train.inputs.data.output: only a task input has an output",
    ),
    (
        "missing input path",
        (*TASK, 'inputs.data = "nodata"'),
        "Ssmfile.toml:3: tasks.train.inputs.data: 'nodata' not found",
    ),
    (
        "missing entry_point",
        ("[project]", 'name = "p"', "", "[tasks.train]", "instance_count = 1"),
        'Ssmfile.toml:4: tasks.train.entry_point: missing; add entry_point = "train.py"',
    ),
    (
        "entry point file missing",
        ("[tasks.train]", 'entry_point = "nope.py"'),
        "Ssmfile.toml:2: tasks.train.entry_point: 'nope.py' not found; create it or fix the path",
    ),
    (
        "entry point missing in source_dir",
        ("[tasks.train]", 'source_dir = "code"', 'entry_point = "train.py"'),
        "Ssmfile.toml:3: tasks.train.entry_point: 'code/train.py' not found",
    ),
    (
        "entry point outside source_dir",
        ("[tasks.train]", 'source_dir = "code"', 'entry_point = "../train.py"'),
        "Ssmfile.toml:3: tasks.train.entry_point: must be a path inside source_dir 'code'",
    ),
    (
        "source_dir missing",
        ("[tasks.train]", 'source_dir = "src"', 'entry_point = "train.py"'),
        "Ssmfile.toml:2: tasks.train.source_dir: directory 'src' not found",
    ),
    (
        "dependency missing, in a multi-line array",
        (*TASK, "dependencies = [", '  "external_dependency",', '  "libs",', "]"),
        "Ssmfile.toml:3: tasks.train.dependencies: dependency 'libs' not found",
    ),
    (
        "requirements missing",
        (*TASK, 'requirements = """', 'reqs.txt"""'),
        "Ssmfile.toml:3: tasks.train.requirements: file 'reqs.txt' not found",
    ),
    (
        "bad task name",
        ("[tasks.my_task]", 'entry_point = "train.py"'),
        "Ssmfile.toml:1: tasks.my_task: bad task name 'my_task'; "
        "use only letters, digits and '-', like 'my-task'",
    ),
    (
        "bad quoted task name",
        ("", '[tasks."my task"]', 'entry_point = "train.py"'),
        "Ssmfile.toml:2: tasks.\"my task\": bad task name 'my task'",
    ),
    (
        "task named like a subcommand",
        ("[tasks.status]", 'entry_point = "train.py"'),
        "Ssmfile.toml:1: tasks.status: task name 'status' is an ssmake subcommand",
    ),
    (
        "unknown upstream",
        (*PREPARE, *TASK, 'inputs.m = { task = "prepar" }'),
        "Ssmfile.toml:5: tasks.train.inputs.m.task: unknown task 'prepar'; did you mean 'prepare'?",
    ),
    (
        "unknown after",
        (*TASK, 'after = ["zzz"]'),
        "Ssmfile.toml:3: tasks.train.after: unknown task 'zzz'; tasks are: train",
    ),
    (
        "self dependency",
        (*TASK, 'inputs.m = { task = "train" }'),
        "Ssmfile.toml:3: tasks.train.inputs.m.task: a task cannot depend on itself",
    ),
    (
        "3-cycle",
        (
            "[tasks.a]",
            'entry_point = "train.py"',
            'after = ["c"]',
            "[tasks.b]",
            'entry_point = "train.py"',
            'inputs.x = { task = "a" }',
            "[tasks.c]",
            'entry_point = "train.py"',
            'inputs.y = { task = "b", output = "output" }',
        ),
        "Ssmfile.toml:3: tasks.a.after: cycle: a -> b -> c -> a",
    ),
    (
        "bad default target",
        ("[project]", 'default = ["trian"]', *TASK),
        "Ssmfile.toml:2: project.default: unknown task 'trian'; did you mean 'train'?",
    ),
    (
        "reserved project name",
        ("[project]", 'name = "cache"', *TASK),
        "Ssmfile.toml:2: project.name: project name 'cache' is reserved",
    ),
    (
        "local store on sagemaker",
        ("[project]", 'backend = "sagemaker"', 'store = "out"', *TASK),
        "Ssmfile.toml:3: project.store: the sagemaker backend needs an S3 store",
    ),
    (
        "bad metrics regex",
        (*TASK, 'metrics = { loss = "loss=(.*" }'),
        "Ssmfile.toml:3: tasks.train.metrics.loss: regex 'loss=(.*' does not compile",
    ),
    (
        "metrics regex without a group",
        (*TASK, 'metrics = { loss = "loss=.*" }'),
        "Ssmfile.toml:3: tasks.train.metrics.loss: regex 'loss=.*' has no group",
    ),
    (
        "bad s3 uri",
        (*TASK, 'inputs.data = { s3 = "s3:/bucket/key" }'),
        "Ssmfile.toml:3: tasks.train.inputs.data.s3: 's3:/bucket/key' is not an S3 URI; "
        "write s3://BUCKET/KEY",
    ),
    (
        "bad s3 uri in shorthand",
        (*TASK, 'inputs.data = "s3://B"'),
        "Ssmfile.toml:3: tasks.train.inputs.data: 's3://B' is not an S3 URI",
    ),
    (
        "bad channel name",
        (*TASK, 'inputs."my data" = "data"'),
        "Ssmfile.toml:3: tasks.train.inputs.\"my data\": bad channel name 'my data'",
    ),
    (
        "channel names clashing in SM_CHANNEL_",
        (*TASK, 'inputs = { data = "data", DATA = "data" }'),
        "Ssmfile.toml:3: tasks.train.inputs.DATA: channel 'DATA' clashes with 'data' "
        "(both are SM_CHANNEL_DATA to the job)",
    ),
    (
        "bad environment variable name",
        (*TASK, 'environment = { "MY.FLAG" = "1" }'),
        "Ssmfile.toml:3: tasks.train.environment.\"MY.FLAG\": 'MY.FLAG' is not an environment",
    ),
    (
        "hyperparameter that has no JSON form",
        (*TASK, "hyperparameters = { layers = [1, 07:32:00] }"),
        "Ssmfile.toml:3: tasks.train.hyperparameters.layers: "
        "expected a string, number, boolean, array or table of those, got time 07:32:00",
    ),
    (
        "no tasks",
        ("[project]", 'name = "p"', "[tasks]"),
        "Ssmfile.toml:3: tasks: no tasks defined: add a [tasks.NAME] table",
    ),
    (
        "no tasks table at all",
        ("[project]", 'name = "p"'),
        "Ssmfile.toml: tasks: no tasks defined: add a [tasks.NAME] table",
    ),
    (
        "bad completion",
        (*TASK, 'completion = "done"'),
        "Ssmfile.toml:3: tasks.train.completion: 'done' is not one of job, marked",
    ),
    (
        "bad download kind",
        (*TASK, 'output_path = "out"', 'download = ["model", "weights"]'),
        "Ssmfile.toml:4: tasks.train.download: 'weights' is not one of model, output, state, logs",
    ),
    (
        "download without output_path",
        (*TASK, 'download = ["model"]'),
        "Ssmfile.toml:3: tasks.train.download: needs output_path",
    ),
    (
        "dockerfile dir without Dockerfile",
        (*TASK, 'dockerfile = "nodocker"'),
        "Ssmfile.toml:3: tasks.train.dockerfile: no Dockerfile in 'nodocker'",
    ),
    (
        "dockerfile dir missing",
        (*TASK, 'dockerfile = "nothere"'),
        "Ssmfile.toml:3: tasks.train.dockerfile: directory 'nothere' not found",
    ),
]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [pytest.param(lines, expected, id=name) for name, lines, expected in BAD_CONFIGS],
)
def test_bad_config(root: Path, lines: tuple[str, ...], expected: str) -> None:
    write(root, *lines)

    error = load_error(root)

    assert expected in str(error)
    assert error.exit_code == 2


def test_every_problem_is_reported_most_important_first(root: Path) -> None:
    write(
        root,
        "[defaults]",
        "spot = 1",
        "[tasks.a]",
        'entrypoint = "train.py"',
        'dependencies = ["gone"]',
        "[tasks.b]",
        'entry_point = "train.py"',
        'after = ["x"]',
    )

    lines = str(load_error(root)).splitlines()

    assert lines == [
        "Ssmfile.toml:4: tasks.a.entrypoint: unknown key; did you mean 'entry_point'?",
        "Ssmfile.toml:2: defaults.spot: expected a boolean (true or false, unquoted), "
        "got integer 1",
        'Ssmfile.toml:3: tasks.a.entry_point: missing; add entry_point = "train.py", '
        "the script the job runs",
        "Ssmfile.toml:8: tasks.b.after: unknown task 'x'; tasks are: a, b",
        "Ssmfile.toml:5: tasks.a.dependencies: dependency 'gone' not found; "
        "create it or fix the path",
    ]


def test_every_cycle_is_named(root: Path) -> None:
    write(
        root,
        "[tasks.a]",
        'entry_point = "train.py"',
        'after = ["b"]',
        "[tasks.b]",
        'entry_point = "train.py"',
        'after = ["a"]',
        "[tasks.c]",
        'entry_point = "train.py"',
        'after = ["d"]',
        "[tasks.d]",
        'entry_point = "train.py"',
        'after = ["c"]',
    )

    message = str(load_error(root))

    assert "Ssmfile.toml:3: tasks.a.after: cycle: a -> b -> a" in message
    assert "Ssmfile.toml:9: tasks.c.after: cycle: c -> d -> c" in message


def test_directory_name_must_make_a_project_name(tmp_path: Path) -> None:
    root = tmp_path / "my_project"
    root.mkdir()
    write(root, "[tasks.t]", 'entry_point = "t.py"')
    (root / "t.py").write_text("")

    message = str(load_error(root))

    assert "project.name: the directory name, the default project name, 'my_project'" in message
    assert 'set name = "my-project" in [project]' in message


def test_build_task_without_a_file(tmp_path: Path) -> None:
    task = build_task(
        "one",
        {"entry_point": "run.py", "hyperparameters": {"b": 2}},
        defaults={"instance_count": 3, "hyperparameters": {"a": 1, "b": 1}},
    )

    assert task == Task(
        name="one", entry_point="run.py", instance_count=3, hyperparameters={"a": 1, "b": 2}
    )

    with pytest.raises(ConfigError) as caught:
        build_task("one", {"entry_point": "run.py", "volume_size": 0})
    assert str(caught.value) == "tasks.one.volume_size: must be at least 1, got 0"

    with pytest.raises(ConfigError) as caught:
        build_task("one", {"entry_point": "run.py"}, root=tmp_path)
    assert str(caught.value) == (
        "tasks.one.entry_point: 'run.py' not found; create it or fix the path"
    )


def test_build_task_with_a_locator() -> None:
    where = Locator("[tasks.x]\nentry_point = 1\n", "flags")

    with pytest.raises(ConfigError) as caught:
        build_task("x", {"entry_point": 1}, where=where)

    assert (
        str(caught.value)
        == 'flags:2: tasks.x.entry_point: expected a string, got integer 1; quote it: "1"'
    )


def test_subcommands_and_task_keys() -> None:
    assert {"run", "status", "cancel", "help"} <= SUBCOMMANDS
    assert "entry_point" in TASK_KEYS
    assert "name" not in TASK_KEYS


LOCATED = """\
# a comment [not.a.table]
[project]
name = "x" # trailing = comment

[tasks."my task"]
entry_point = 'a.py'
inputs.data = { path = "d", distribution = "ShardedByS3Key" }
notes = \"\"\"
not_a_key = 1
[not.a.header]
\"\"\"
dependencies = [
  "a", # ]
  { weird = "inline in array" },
]
hyperparameters = { nested = { deep = 1 }, "quoted.key" = 2 }

[[tasks.list]]
x = 1
  [ tasks . "dotted" . sub ]
y = 2023-01-01 10:00:00
z = 3
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("project",), 2),
        (("project", "name"), 3),
        (("tasks",), 5),
        (("tasks", "my task"), 5),
        (("tasks", "my task", "entry_point"), 6),
        (("tasks", "my task", "inputs"), 7),
        (("tasks", "my task", "inputs", "data", "distribution"), 7),
        (("tasks", "my task", "notes"), 8),
        (("tasks", "my task", "dependencies"), 12),
        (("tasks", "my task", "hyperparameters", "nested", "deep"), 16),
        (("tasks", "my task", "hyperparameters", "quoted.key"), 16),
        (("tasks", "my task", "missing"), 5),
        (("tasks", "list", "x"), 19),
        (("tasks", "dotted", "sub", "y"), 21),
        (("tasks", "dotted", "sub", "z"), 22),
        (("not",), None),
        (("not_a_key",), None),
        (("weird",), None),
        ((), None),
    ],
)
def test_locator_finds_lines(path: tuple[str, ...], line: int | None) -> None:
    assert Locator(LOCATED, "f").line(path) == line


def test_locator_keeps_what_it_found_before_garbage() -> None:
    where = Locator("[a]\nb = 1\n[c\n d = ?\n", "f")

    assert where.line(("a", "b")) == 2
    assert where.line(("c", "d")) is None


@given(st.text(), st.lists(st.text(), max_size=4))
def test_locator_never_crashes(text: str, path: list[str]) -> None:
    line = Locator(text, "f").line(path)

    assert line is None or 1 <= line <= text.count("\n") + 1


def test_format_key_quotes_what_toml_would() -> None:
    assert format_key(("tasks", "my task", "inputs", "a.b")) == 'tasks."my task".inputs."a.b"'
