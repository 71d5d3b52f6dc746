"""Hostile and mistaken input: every bad Ssmfile or command line exits 2 with a message
that says what is wrong and where, and never with a traceback.

A corpus of malformed Ssmfiles runs through `ssmake -n`, and of malformed
command lines through `ssmake` and `ssm`, all in-process. A property test feeds
random documents of the Ssmfile's shape (random types and values at every key)
to the loader and the CLI: each is either valid or refused with exit 2.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssmake.cli import main as ssmake_main
from ssmake.compat.cli import main as ssm_main
from ssmake.errors import ConfigError
from ssmake.project.load import PROJECT_KEYS, load_project
from ssmake.project.task_table import IMAGE_KEYS, INPUT_KEYS, TASK_KEYS

if TYPE_CHECKING:
    from aws_fixtures import AwsEnv
    from conftest import ProjectDir

FILES = ("train.py", "code/w.py", "code/requirements.txt", "lib/x.py", "data/a.txt")


def make_root(root: Path) -> Path:
    """A project directory holding the files the cases below name."""
    for rel in FILES:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    (root / "nodocker").mkdir(exist_ok=True)
    return root


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"  # a valid project name
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.delenv("SSMAKE_BACKEND", raising=False)
    return make_root(root)


def run(entry: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = entry(argv)
    return code, err.getvalue()


T = '[tasks.t]\nentry_point = "train.py"\n'

# (case, Ssmfile text, what the error must say)
BAD_SSMFILES: list[tuple[str, str, str]] = [
    ("empty file", "", "Ssmfile.toml: tasks: no tasks defined: add a [tasks.NAME] table"),
    ("empty tasks table", "[tasks]\n", "Ssmfile.toml:1: tasks: no tasks defined"),
    (
        "unterminated string",
        '[tasks.t]\nentry_point = "train.py\n',
        "Ssmfile.toml:2:24: invalid TOML: Illegal character",
    ),
    (
        "duplicate key",
        T + 'entry_point = "train.py"\n',
        "Ssmfile.toml:3:25: invalid TOML: Cannot overwrite a value",
    ),
    ("duplicate table", T + "[tasks.t]\n", "invalid TOML: Cannot declare ('tasks', 't') twice"),
    ("tasks not a table", "tasks = 3\n", "Ssmfile.toml:1: tasks: expected a table, got integer 3"),
    ("task not a table", "tasks.t = 3\n", "Ssmfile.toml:1: tasks.t: expected a table"),
    (
        "unknown top-level key",
        "[task.t]\n",
        "Ssmfile.toml:1: task: unknown key; did you mean 'tasks'?",
    ),
    ("project name integer", "[project]\nname = 3\n" + T, "project.name: expected a string"),
    (
        "project name with a space",
        '[project]\nname = "a b"\n' + T,
        "project.name: project name 'a b' may use only letters, digits and '-'",
    ),
    (
        "unknown backend",
        '[project]\nbackend = "aws"\n' + T,
        "Ssmfile.toml:2: project.backend: 'aws' is not one of local, sagemaker",
    ),
    ("store integer", "[project]\nstore = 3\n" + T, "project.store: expected a string"),
    (
        "store S3 URI without bucket",
        '[project]\nstore = "s3://"\n' + T,
        "project.store: 's3://' is not an S3 URI; write s3://BUCKET[/PREFIX]",
    ),
    (
        "default not an array",
        '[project]\ndefault = "t"\n' + T,
        "project.default: expected an array of strings, got string 't'; write [\"t\"]",
    ),
    (
        "default names an unknown task",
        '[project]\ndefault = ["x"]\n' + T,
        "project.default: unknown task 'x'; tasks are: t",
    ),
    ("region integer", "[project]\nregion = 1\n" + T, "project.region: expected a string"),
    (
        "task name with a space",
        '[tasks."a b"]\nentry_point = "train.py"\n',
        "bad task name 'a b'; use only letters, digits and '-', like 'a-b'",
    ),
    (
        "task name shadows a subcommand",
        '[tasks.status]\nentry_point = "train.py"\n',
        "tasks.status: task name 'status' is an ssmake subcommand; rename the task",
    ),
    (
        "no entry point",
        "[tasks.t]\nspot = true\n",
        "Ssmfile.toml:1: tasks.t.entry_point: missing; add entry_point",
    ),
    (
        "entry point not found",
        '[tasks.t]\nentry_point = "nope.py"\n',
        "Ssmfile.toml:2: tasks.t.entry_point: 'nope.py' not found; create it or fix the path",
    ),
    (
        "entry point is a directory",
        '[tasks.t]\nentry_point = "code"\n',
        "tasks.t.entry_point: 'code' not found",
    ),
    (
        "entry point with a NUL byte",
        '[tasks.t]\nentry_point = "train\\u0000.py"\n',
        "Ssmfile.toml:2: tasks.t.entry_point: contains a NUL character (\\u0000)",
    ),
    (
        "source_dir not found",
        '[tasks.t]\nsource_dir = "src"\nentry_point = "w.py"\n',
        "tasks.t.source_dir: directory 'src' not found",
    ),
    (
        "entry point escapes source_dir",
        '[tasks.t]\nsource_dir = "code"\nentry_point = "../train.py"\n',
        "tasks.t.entry_point: must be a path inside source_dir 'code', relative to it",
    ),
    (
        "dependencies not an array",
        T + 'dependencies = "lib"\n',
        "tasks.t.dependencies: expected an array of strings, got string 'lib'",
    ),
    (
        "dependency not found",
        T + 'dependencies = ["nolib"]\n',
        "tasks.t.dependencies: dependency 'nolib' not found",
    ),
    (
        "requirements not found",
        T + 'requirements = "req.txt"\n',
        "tasks.t.requirements: file 'req.txt' not found",
    ),
    (
        "negative instance_count",
        T + "instance_count = -1\n",
        "Ssmfile.toml:3: tasks.t.instance_count: must be at least 1, got -1",
    ),
    (
        "fractional instance_count",
        T + "instance_count = 1.5\n",
        "tasks.t.instance_count: expected an integer, got float 1.5",
    ),
    (
        "boolean instance_count",
        T + "instance_count = true\n",
        "tasks.t.instance_count: expected an integer, got boolean true",
    ),
    ("zero volume_size", T + "volume_size = 0\n", "tasks.t.volume_size: must be at least 1"),
    ("zero max_run_mins", T + "max_run_mins = 0\n", "tasks.t.max_run_mins: must be at least 1"),
    (
        "negative max_wait_mins",
        T + "max_wait_mins = -1\n",
        "tasks.t.max_wait_mins: must be at least 0, got -1",
    ),
    (
        "max_wait below max_run on spot",
        T + "max_wait_mins = 10\nmax_run_mins = 60\n",
        "tasks.t.max_wait_mins: must be at least max_run_mins (60)",
    ),
    (
        "spot as a number",
        T + "spot = 1\n",
        "tasks.t.spot: expected a boolean (true or false, unquoted), got integer 1",
    ),
    (
        "enable_metrics as a string",
        T + 'enable_metrics = "yes"\n',
        "tasks.t.enable_metrics: expected a boolean",
    ),
    (
        "hyperparameters as a string",
        T + 'hyperparameters = "lr=1"\n',
        "tasks.t.hyperparameters: expected a table, got string 'lr=1'",
    ),
    (
        "date inside a hyperparameter table",
        T + "hyperparameters = { a = { b = [1979-05-27] } }\n",
        "tasks.t.hyperparameters.a: expected a string, number, boolean, array or table of "
        "those, got date 1979-05-27",
    ),
    (
        "unknown distribution strategy",
        T + "distribution = { torch_distribute = { enabled = true } }\n",
        "tasks.t.distribution.torch_distribute: unknown strategy; "
        "did you mean 'torch_distributed'?",
    ),
    (
        "two distribution strategies",
        T + "distribution = { mpi = { enabled = true }, pytorchddp = { enabled = true } }\n",
        "tasks.t.distribution: needs exactly one strategy, "
        "one of torch_distributed, pytorchddp, mpi",
    ),
    (
        "distribution without enabled",
        T + "distribution = { mpi = { processes_per_host = 2 } }\n",
        "tasks.t.distribution.mpi.enabled: missing; add enabled = true",
    ),
    (
        "distribution setting of another strategy",
        T + "distribution = { pytorchddp = { enabled = true, processes_per_host = 2 } }\n",
        "tasks.t.distribution.pytorchddp.processes_per_host: unknown key",
    ),
    (
        "hyperparameter date",
        T + "hyperparameters = { a = 1979-05-27 }\n",
        "got date 1979-05-27",
    ),
    (
        "input path not found",
        T + 'inputs.d = { path = "nodata" }\n',
        "tasks.t.inputs.d.path: 'nodata' not found",
    ),
    (
        "input s3 not an S3 URI",
        T + 'inputs.d = { s3 = "http://x/y" }\n',
        "tasks.t.inputs.d.s3: 'http://x/y' is not an S3 URI; write s3://BUCKET/KEY",
    ),
    (
        "input from an unknown task",
        T + 'inputs.d = { task = "x", output = "model" }\n',
        "tasks.t.inputs.d.task: unknown task 'x'; tasks are: t",
    ),
    (
        "input from itself",
        T + 'inputs.d = { task = "t", output = "model" }\n',
        "tasks.t.inputs.d.task: a task cannot depend on itself",
    ),
    (
        "input with two sources",
        T + 'inputs.d = { path = "data", s3 = "s3://b/k" }\n',
        "tasks.t.inputs.d: needs exactly one of path, s3 and task, got path and s3",
    ),
    (
        "inputs as an array",
        T + 'inputs = ["data"]\n',
        "tasks.t.inputs: expected a table, got an array",
    ),
    (
        "bad channel name",
        T + 'inputs."a/b" = { path = "data" }\n',
        "bad channel name 'a/b'; use at most 64 letters, digits",
    ),
    (
        "bad distribution",
        T + 'inputs.d = { path = "data", distribution = "x" }\n',
        "tasks.t.inputs.d.distribution: 'x' is not one of FullyReplicated, ShardedByS3Key",
    ),
    (
        "cycle through after",
        '[tasks.a]\nentry_point = "train.py"\nafter = ["b"]\n'
        '[tasks.b]\nentry_point = "train.py"\nafter = ["a"]\n',
        "tasks.a.after: cycle: a -> b -> a",
    ),
    (
        "after names an unknown task",
        T + 'after = ["zz"]\n',
        "tasks.t.after: unknown task 'zz'; tasks are: t",
    ),
    ("after as a string", T + 'after = "b"\n', "tasks.t.after: expected an array of strings"),
    (
        "unknown completion rule",
        T + 'completion = "done"\n',
        "tasks.t.completion: 'done' is not one of job, marked",
    ),
    (
        "unknown download kind",
        T + 'download = ["weights"]\noutput_path = "o"\n',
        "tasks.t.download: 'weights' is not one of model, output, state, logs",
    ),
    (
        "download without output_path",
        T + 'download = ["model"]\n',
        "tasks.t.download: needs output_path, the directory to download into",
    ),
    (
        "metric regex that does not compile",
        T + 'metrics = { loss = "loss=(" }\n',
        "tasks.t.metrics.loss: regex 'loss=(' does not compile",
    ),
    ("metrics as a string", T + 'metrics = "loss"\n', "tasks.t.metrics: expected a table"),
    ("tag value integer", T + "tags = { a = 1 }\n", "tasks.t.tags.a: expected a string"),
    (
        "reserved tag key",
        T + 'tags = { "aws:x" = "1" }\n',
        "tag keys starting with 'ssmake:' or 'aws:' are reserved",
    ),
    (
        "environment value integer",
        T + "environment = { A = 1 }\n",
        "tasks.t.environment.A: expected a string, got integer 1",
    ),
    (
        "environment name not a variable name",
        T + 'environment = { "1A=" = "x" }\n',
        "'1A=' is not an environment variable name",
    ),
    (
        "image uri and repo together",
        T + 'image = { uri = "a/b:1", repo = "r" }\n',
        "tasks.t.image: uri names a ready image",
    ),
    (
        "unknown image key",
        T + 'image = { uri = "x", tga = "1" }\n',
        "tasks.t.image.tga: unknown key; did you mean 'tag'?",
    ),
    (
        "unquoted framework_version",
        T + "framework_version = 2.1\n",
        'tasks.t.framework_version: expected a string, got float 2.1; quote it: "2.1"',
    ),
    (
        "unknown framework",
        T + 'framework = "jax"\n',
        "tasks.t.framework: 'jax' is not one of pytorch, tensorflow",
    ),
    (
        "dockerfile directory without a Dockerfile",
        T + 'dockerfile = "nodocker"\n',
        "tasks.t.dockerfile: no Dockerfile in 'nodocker'",
    ),
    (
        "bad instance type",
        T + 'instance_type = "big"\n',
        "tasks.t.instance_type: 'big' is not a SageMaker instance type",
    ),
    (
        "misspelt task key",
        '[tasks.t]\nentrypoint = "train.py"\n',
        "tasks.t.entrypoint: unknown key; did you mean 'entry_point'?",
    ),
    (
        "unknown defaults key",
        "[defaults]\nfoo = 1\n" + T,
        "Ssmfile.toml:2: defaults.foo: unknown key",
    ),
    (
        "bad value inherited from defaults",
        "[defaults]\nvolume_size = -1\n" + T,
        "Ssmfile.toml:2: defaults.volume_size: must be at least 1, got -1",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"),
    [pytest.param(text, message, id=case) for case, text, message in BAD_SSMFILES],
)
def test_bad_ssmfile_exits_2_with_its_message(root: Path, text: str, message: str) -> None:
    (root / "Ssmfile.toml").write_text(text)

    code, err = run(ssmake_main, ["run", "-C", str(root), "-n"])

    assert code == 2, err
    assert err.startswith("ssmake: error: "), err
    assert message in err
    assert "Traceback" not in err


def test_ssmfile_that_is_not_utf8(root: Path) -> None:
    (root / "Ssmfile.toml").write_bytes(b'[tasks.t]\nentry_point = "\xff\xfe"\n')

    code, err = run(ssmake_main, ["run", "-C", str(root), "-n"])

    assert code == 2
    assert "Ssmfile.toml: not UTF-8 text (invalid start byte at byte 25); save it as UTF-8" in err


# (case, ssmake arguments after -C ROOT, what the error must say), on a valid Ssmfile.
BAD_SSMAKE_ARGS: list[tuple[str, list[str], str]] = [
    ("Ssmfile named by -f is missing", ["run", "-f", "nope.toml"], "nope.toml: not found"),
    ("unknown flag", ["run", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (
        "-j not a number",
        ["run", "-j", "abc"],
        "argument -j/--jobs: expected a whole number, got 'abc'",
    ),
    ("unknown target", ["run", "-n", "zzz"], "unknown task 'zzz' (tasks: t)"),
    ("explain an unknown task", ["explain", "zzz"], "unknown task 'zzz' (tasks: t)"),
    ("unknown backend", ["run", "--backend", "aws"], "argument --backend: invalid choice: 'aws'"),
    ("download before any run", ["download", "t"], "task t has no result yet: run 'ssmake t'"),
    ("cancel with nothing running", ["cancel", "t"], "task t has no running job"),
    ("unknown graph format", ["graph", "--format", "gif"], "invalid choice: 'gif'"),
]


@pytest.mark.parametrize(
    ("argv", "message"),
    [pytest.param(argv, message, id=case) for case, argv, message in BAD_SSMAKE_ARGS],
)
def test_bad_ssmake_command_line_exits_2(root: Path, argv: list[str], message: str) -> None:
    (root / "Ssmfile.toml").write_text(T)

    code, err = run(ssmake_main, [argv[0], "-C", str(root), *argv[1:]])

    assert code == 2, err
    assert message in err
    assert "Traceback" not in err


def test_missing_project_directory_exits_2(tmp_path: Path) -> None:
    code, err = run(ssmake_main, ["run", "-C", str(tmp_path / "nowhere"), "-n"])

    assert code == 2
    assert f"{tmp_path / 'nowhere'}/Ssmfile.toml: not found; create one with 'ssmake init'" in err


SSM = ["-p", "proj", "-t", "task1", "-e", "train.py", "--backend", "local"]

# (case, ssm arguments, what the error must say)
BAD_SSM_ARGS: list[tuple[str, list[str], str]] = [
    (
        "no project",
        ["-t", "x", "-e", "train.py"],
        "the following arguments are required: --project_name/-p",
    ),
    ("no task", ["-p", "x", "-e", "train.py"], "required: --task_name/-t"),
    ("no entry point", ["-p", "x", "-t", "x"], "required: --entry_point/-e"),
    (
        "entry point not found",
        ["-p", "x", "-t", "x", "-e", "nope.py"],
        "-e/--entry_point: 'nope.py' not found; create it or fix the path",
    ),
    (
        "zero instances",
        [*SSM, "--ic", "0"],
        "--ic/--instance_count: must be at least 1, got 0",
    ),
    ("instance count not a number", [*SSM, "--ic", "two"], "invalid int value: 'two'"),
    ("bad instance type", [*SSM, "--it", "big"], "'big' is not a SageMaker instance type"),
    ("unknown framework", [*SSM, "-f", "jax"], "invalid choice: 'jax'"),
    (
        "unknown task output type",
        [*SSM, "--iit", "m", "other", "weights"],
        "--iit m other weights: the type is one of model, output, state",
    ),
    (
        "bad input distribution",
        [*SSM, "-i", "data", "Sharded"],
        "distribution 'Sharded' is not one of FullyReplicated, ShardedByS3Key",
    ),
    ("input path not found", [*SSM, "-i", "nodata"], "-i nodata: 'nodata' not found"),
    (
        "download without output path",
        [*SSM, "--download_model"],
        "--download_model: needs -o/--output_path",
    ),
    (
        "stray positional argument",
        [*SSM, "positional"],
        "unrecognized argument: positional; hyperparameters are --NAME VALUE pairs",
    ),
    (
        "hyperparameter without a value",
        [*SSM, "--epochs"],
        "--epochs is not an ssm flag, and as a hyperparameter it needs a value",
    ),
    (
        "hyperparameter without a name",
        [*SSM, "--=1"],
        "--=1: a hyperparameter needs a name: --NAME VALUE",
    ),
    ("unknown short flag", [*SSM, "-x"], "unrecognized argument: -x"),
    (
        "tag given twice",
        [*SSM, "--tag", "a", "1", "--tag", "a", "2"],
        "--tag a: this tag is given twice, with different values",
    ),
    (
        "metric regex that does not compile",
        [*SSM, "--md", "loss", "loss=("],
        "--md/--metric_definitions loss: regex 'loss=(' does not compile",
    ),
    (
        "dependency not found",
        [*SSM, "-d", "nolib"],
        "-d/--dependencies: dependency 'nolib' not found",
    ),
    ("unknown backend", [*SSM, "--backend", "aws"], "argument --backend: invalid choice: 'aws'"),
    (
        "max_wait below max_run",
        [*SSM, "--max_wait_mins", "10", "--max_run_mins", "60"],
        "--max_wait_mins: must be at least max_run_mins (60) for a spot job",
    ),
    (
        "source dir not found",
        [*SSM, "-s", "nosrc"],
        "-s/--source_dir: directory 'nosrc' not found",
    ),
    ("bad project name", [*SSM, "-p", "bad name"], "bad project name 'bad name'"),
    ("bad task name", [*SSM, "-t", "bad.name"], "-t/--task_name: bad task name 'bad.name'"),
    (
        "task name shadows a subcommand",
        [*SSM, "-t", "status"],
        "-t/--task_name: task name 'status' is an ssmake subcommand",
    ),
    (
        "input given twice",
        [*SSM, "--iis", "a", "s3://b/k", "--iis", "a", "s3://b/j"],
        "--iis a: input 'a' is already given by --iis a",
    ),
    (
        "docker dir without a Dockerfile",
        [*SSM, "--df", "nodocker"],
        "--df/--docker_file_path: no Dockerfile in 'nodocker'",
    ),
    ("negative volume", [*SSM, "-v", "-5"], "-v/--volume_size: must be at least 1, got -5"),
    (
        "input from a task that never ran",
        [*SSM, "--iit", "m", "zzz", "model"],
        "task task1 consumes the model of task zzz (input m), but zzz has no completed run",
    ),
]


@pytest.mark.parametrize(
    ("argv", "message"),
    [pytest.param(argv, message, id=case) for case, argv, message in BAD_SSM_ARGS],
)
def test_bad_ssm_command_line_exits_2(root: Path, argv: list[str], message: str) -> None:
    code, err = run(ssm_main, argv)

    assert code == 2, err
    assert "ssm: error: " in err
    assert message in err
    assert "Traceback" not in err
    assert not (root / ".ssmake" / "proj").exists()  # nothing ran


def test_the_corpus_is_large() -> None:
    assert len(BAD_SSMFILES) + len(BAD_SSMAKE_ARGS) + len(BAD_SSM_ARGS) >= 40


# -- random documents -------------------------------------------------------------

# Values that are sometimes right: names of files the root holds, URIs, numbers.
PLAUSIBLE = st.sampled_from(
    [
        "train.py",
        "w.py",
        "code",
        "data",
        "lib",
        "nodocker",
        "s3://bucket/key",
        "s3://",
        "t",
        "u",
        "model",
        "state",
        "ml.m5.large",
        "pytorch",
        "ShardedByS3Key",
        "local",
        "sagemaker",
        "marked",
        "../train.py",
        "/",
    ]
)
SCALARS = st.one_of(
    PLAUSIBLE,
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.times(),
)
KEY = st.one_of(st.sampled_from(["t", "u", "a b", "status", "x.y", ""]), st.text(max_size=8))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEY, inner, max_size=3)),
    max_leaves=6,
)
WORD = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,7}", fullmatch=True)


def table_of(keys: tuple[str, ...], value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A table whose keys are mostly the schema's (and sometimes not), or not a table."""
    known = st.dictionaries(st.sampled_from(keys), value, max_size=len(keys))
    return st.one_of(known, st.dictionaries(KEY, value, max_size=2), VALUES)


INPUT = table_of(INPUT_KEYS, st.one_of(PLAUSIBLE, SCALARS))
TASK_VALUE = st.one_of(
    SCALARS,
    table_of(IMAGE_KEYS, SCALARS),
    st.dictionaries(KEY, st.one_of(INPUT, SCALARS), max_size=2),
    st.lists(PLAUSIBLE, max_size=3),
)
# A valid value for each task key (given the files make_root writes), so that a
# document can be valid, or wrong at exactly one key.
VALID_TASK_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "dependencies": st.just(["lib"]),
    "requirements": st.just("code/requirements.txt"),
    "instance_type": st.sampled_from(["ml.m5.large", "ml.p3.2xlarge"]),
    "instance_count": st.integers(1, 3),
    "volume_size": st.integers(1, 500),
    "spot": st.booleans(),
    "max_wait_mins": st.just(0),
    "max_run_mins": st.integers(1, 10_000),
    "framework": st.sampled_from(["pytorch", "tensorflow"]),
    "framework_version": st.just("2.1"),
    "python_version": st.just("py310"),
    "hyperparameters": st.dictionaries(
        WORD, st.one_of(st.text(max_size=8), st.integers(), st.booleans()), max_size=3
    ),
    "environment": st.dictionaries(WORD, st.text(max_size=8), max_size=2),
    "tags": st.dictionaries(WORD, st.text(max_size=8), max_size=2),
    "metrics": st.dictionaries(WORD, st.just("loss=(.*?);"), max_size=2),
    "enable_metrics": st.booleans(),
    "inputs": st.dictionaries(
        WORD,
        st.sampled_from(
            ["data", {"path": "data"}, {"s3": "s3://bucket/key"}, {"task": "u", "output": "model"}]
        ),
        max_size=2,
    ),
    "completion": st.sampled_from(["job", "marked"]),
    "after": st.sampled_from([[], ["u"], ["t"]]),
    "image": st.just({"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"}),
}
VALID_TASK = st.fixed_dictionaries(
    {"entry_point": st.just("train.py")},
    optional={k: v for k, v in VALID_TASK_VALUES.items() if k in TASK_KEYS},
)
MUTATED_TASK = st.tuples(
    VALID_TASK, st.sampled_from((*TASK_KEYS, "bogus")), st.one_of(PLAUSIBLE, TASK_VALUE)
).map(lambda t: {**t[0], t[1]: t[2]})
TASK = st.one_of(VALID_TASK, MUTATED_TASK, table_of(TASK_KEYS, TASK_VALUE))
PROJECT = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"name": st.just("demo"), "backend": st.just("local"), "default": st.just([])}
    ),
    table_of(PROJECT_KEYS, st.one_of(PLAUSIBLE, SCALARS, st.lists(PLAUSIBLE))),
)
DEFAULTS = st.one_of(
    st.fixed_dictionaries({}, optional=VALID_TASK_VALUES), table_of(TASK_KEYS, TASK_VALUE)
)
TASKS = st.one_of(
    st.dictionaries(st.sampled_from(["t", "u"]), TASK, min_size=1, max_size=2),
    st.dictionaries(st.one_of(st.sampled_from(["t", "u"]), KEY), TASK, max_size=3),
    VALUES,
)
SHAPED = st.fixed_dictionaries(
    {"tasks": TASKS}, optional={"project": PROJECT, "defaults": DEFAULTS}
)
SHAPELESS = st.dictionaries(st.sampled_from(["project", "defaults", "tasks", "extra"]), VALUES)
# One document in ten is shapeless; the others have the Ssmfile's shape.
DOCUMENTS = st.integers(0, 9).flatmap(lambda i: SHAPELESS if i == 0 else SHAPED)


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """A TOML value: inline tables and arrays nest; bools before ints (bool is an int)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if re.search(r"[.eE]", text) else text + ".0"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(value)


def to_toml(doc: dict[str, Any]) -> str:
    """Tables of tables as `[a.b]` sections (as people write Ssmfiles), the rest inline."""
    lines = []
    for key, value in doc.items():
        if not isinstance(value, dict):
            lines.append(f"{toml_string(key)} = {toml_value(value)}")
    for key, value in doc.items():
        if not isinstance(value, dict):
            continue
        lines.append(f"[{toml_string(key)}]")
        for sub, item in value.items():
            if not isinstance(item, dict) or key != "tasks":
                lines.append(f"{toml_string(sub)} = {toml_value(item)}")
        for sub, item in value.items():
            if isinstance(item, dict) and key == "tasks":
                lines.append(f"[{toml_string(key)}.{toml_string(sub)}]")
                lines.extend(f"{toml_string(k)} = {toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def random_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        root = Path(name) / "proj"
        root.mkdir()
        yield make_root(root)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # A random document may ask for the sagemaker backend or an s3:// store: with
    # no credentials that must fail at once, without asking the EC2 metadata service.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("SSMAKE_BACKEND", raising=False)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=DOCUMENTS)
def test_random_documents_load_or_fail_cleanly(
    random_root: Path, offline: None, doc: dict[str, Any]
) -> None:
    (random_root / "Ssmfile.toml").write_text(to_toml(doc))

    try:
        load_project(random_root)
    except ConfigError as e:
        assert e.exit_code == 2
        assert "Ssmfile.toml" in e.message.splitlines()[0], e.message
    code, err = run(ssmake_main, ["run", "-C", str(random_root), "-n"])

    assert code in (0, 1, 2), err
    assert "Traceback" not in err
    if code != 0:
        assert "ssmake: error: " in err
    stored = {p.name for p in (random_root / ".ssmake").glob("*")}
    assert stored <= {"cache"}, f"-n wrote to the store: {stored}"


def test_the_random_documents_are_valid_toml() -> None:
    import tomllib

    @settings(max_examples=100, deadline=None)
    @given(doc=DOCUMENTS)
    def check(doc: dict[str, Any]) -> None:
        tomllib.loads(to_toml(doc))

    check()


# -- hostile keys in a bucket ------------------------------------------------------
# S3 keys are any text: a key under a channel or state prefix may read `../x` or
# `/x` below it. Nothing may be written outside the directory it goes to.

HOSTILE_PROJECT = """
[project]
name = "demo"
store = "s3://bkt"

[tasks.train]
entry_point = "train.py"
inputs.shared = { s3 = "s3://bkt/shared/" }
download = ["state"]
output_path = "out"
"""

READS_INPUT = """
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
names = sorted(p.name for p in Path(args.input_shared).rglob("*") if p.is_file())
Path(args.model_dir, "seen").write_text(",".join(names))
Path(args.state, "mine").write_text("ok")
"""


@pytest.fixture
def hostile(project: ProjectDir, aws: AwsEnv) -> ProjectDir:
    aws.client("s3").create_bucket(Bucket="bkt")
    aws.client("s3").put_object(Bucket="bkt", Key="shared/ok.txt", Body=b"ok")
    project.ssmfile(HOSTILE_PROJECT)
    project.write("train.py", READS_INPUT)
    return project


def escapes(tmp_path: Path) -> list[str]:
    """Keys (below some prefix) aiming at tmp_path/escaped-*: absolute, and by `..`."""
    return [f"/{tmp_path}/escaped-abs", "../" * 12 + f"{str(tmp_path)[1:]}/escaped-dots"]


@pytest.mark.parametrize("form", [0, 1], ids=["absolute", "dot-dot"])
def test_a_channel_key_leading_outside_is_refused(
    hostile: ProjectDir, aws: AwsEnv, tmp_path: Path, form: int
) -> None:
    aws.client("s3").put_object(Bucket="bkt", Key="shared/" + escapes(tmp_path)[form], Body=b"x")

    result = hostile.run()

    assert result.code in (1, 2), result.err
    assert "outside" in result.err and "Traceback" not in result.err
    assert not list(tmp_path.glob("escaped-*"))
    assert not list((hostile.root / ".ssmake").rglob("escaped-*"))


@pytest.mark.parametrize("form", [0, 1], ids=["absolute", "dot-dot"])
def test_a_state_key_leading_outside_is_refused(
    hostile: ProjectDir, aws: AwsEnv, tmp_path: Path, form: int
) -> None:
    assert hostile.run().code == 0
    key = "demo/train/state/" + escapes(tmp_path)[form]
    aws.client("s3").put_object(Bucket="bkt", Key=key, Body=b"x")

    downloaded = hostile.run("download", "train", "--state", "-o", "fetched")
    hostile.write("train.py", READS_INPUT + "# changed\n")  # the next job restores state
    rerun = hostile.run()

    for result in (downloaded, rerun):
        assert result.code in (1, 2), result.err
        assert "outside" in result.err and "Traceback" not in result.err
    assert not list(tmp_path.glob("escaped-*"))
    assert not list(hostile.root.rglob("escaped-*"))


def test_a_log_key_of_no_instance_is_ignored(hostile: ProjectDir, aws: AwsEnv) -> None:
    hostile.ssmfile(HOSTILE_PROJECT.replace('download = ["state"]', 'download = ["logs"]'))
    assert hostile.run().code == 0
    marker = json.loads(
        aws.client("s3").get_object(Bucket="bkt", Key="demo/train/ssmake.json")["Body"].read()
    )
    logs = f"demo/train/{marker['job']}/logs/"
    aws.client("s3").put_object(Bucket="bkt", Key=logs + "algo-../x.log", Body=b"x")

    result = hostile.run("download", "train", "--logs", "-o", "fetched")

    assert result.code == 0, result.err
    assert [p.name for p in (hostile.root / "fetched" / "logs").iterdir()] == ["logs0"]


# -- hostile tarballs in the store, end to end ---------------------------------------
# archive.py's rules (tests/test_archive.py) guard every extraction; these show
# that results downloaded from the store and a job's code go through them.

WRITES_MODEL = """
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
Path(args.model_dir, "weights").write_text("w")
"""


def hostile_tarball(path: Path, target: Path) -> None:
    """A tar.gz whose one member climbs out to `target`."""
    data = b"pwned"
    info = tarfile.TarInfo("../" * 20 + str(target).lstrip("/"))
    info.size = len(data)
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(info, io.BytesIO(data))


def test_a_hostile_model_in_the_store_is_refused_on_download(
    project: ProjectDir, tmp_path: Path
) -> None:
    project.ssmfile('[tasks.train]\nentry_point = "train.py"\n')
    project.write("train.py", WRITES_MODEL)
    assert project.run().code == 0
    marker_path = project.store(project.root.name, "train", "ssmake.json")
    marker = json.loads(marker_path.read_text())
    tarball = project.store(marker["outputs"]["model"]["key"])
    hostile_tarball(tarball, tmp_path / "escaped")
    # Whoever could swap the tarball could rewrite the marker to match: the extraction
    # rules stand behind the check of the recorded size.
    marker["outputs"]["model"]["size"] = tarball.stat().st_size
    marker_path.write_text(json.dumps(marker))

    result = project.run("download", "train", "--model", "-o", "fetched")

    assert result.code == 2, result.err
    assert "refusing to extract" in result.err and "outside the destination" in result.err
    assert not (tmp_path / "escaped").exists()
    assert not (project.root / "fetched" / "model").exists()
    assert sorted(p.name for p in (project.root / "fetched").iterdir()) == []


def test_a_hostile_code_tarball_in_the_store_is_refused_by_the_job(
    project: ProjectDir, tmp_path: Path
) -> None:
    project.ssmfile('[tasks.train]\nentry_point = "train.py"\n')
    project.write("train.py", WRITES_MODEL)
    assert project.run().code == 0
    [code] = project.store(project.root.name, "train", "code").iterdir()
    hostile_tarball(code, tmp_path / "escaped")  # the store's copy, swapped

    result = project.run("-B")

    assert result.code == 1, result.err
    assert "refusing to extract" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "escaped").exists()


def test_hyperparameter_names_and_output_path_are_checked(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text("pass\n")
    (tmp_path / "Ssmfile.toml").write_text(
        '[tasks.t]\nentry_point = "w.py"\nhyperparameters = { "my lr" = 1 }\n'
        'output_path = "/"\ndownload = ["model"]\n'
    )
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = ssmake_main(["run", "-n", "-C", str(tmp_path)])

    assert code == 2
    assert 'tasks.t.hyperparameters."my lr": a hyperparameter name is passed as --NAME' in (
        err.getvalue()
    )
    assert "tasks.t.output_path: '/' would replace the project itself" in err.getvalue()
