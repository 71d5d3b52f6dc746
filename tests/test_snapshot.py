"""What a job receives is what was fingerprinted: the regressions of issue 13."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import time

import pytest
from conftest import ProjectDir

from ssmake.build import staging as runner

# Lists what the job received (code and channel "data"), by name and content.
WORKER = """\
import json, os
from pathlib import Path

def tree(top):
    return {
        p.relative_to(top).as_posix(): p.read_bytes().hex()
        for p in sorted(Path(top).rglob("*"))
        if p.is_file() and "worker_toolkit" not in p.parts
    }

data = os.environ.get("SM_CHANNEL_DATA")
seen = {"code": tree(os.environ["SM_MODULE_DIR"]), "data": tree(data) if data else {}}
Path(os.environ["SM_MODEL_DIR"], "seen.json").write_text(json.dumps(seen))
"""


def launched(err: str) -> list[str]:
    return sorted(re.findall(r"ssmake: (\S+): launched job", err))


def marker(project: ProjectDir, task: str, name: str = "p") -> dict:  # type: ignore[type-arg]
    return json.loads(project.store(name, task, "ssmake.json").read_text())


def seen(project: ProjectDir, task: str, name: str = "p") -> dict:  # type: ignore[type-arg]
    key = marker(project, task, name)["outputs"]["model"]["key"]
    with tarfile.open(project.store(key)) as tar:
        member = tar.extractfile("seen.json")
        assert member is not None
        return json.loads(member.read())  # type: ignore[no-any-return]


def one_task(project: ProjectDir, extra: str = "") -> None:
    project.ssmfile(
        f"""
        [project]
        name = "p"

        [tasks.train]
        source_dir = "code"
        entry_point = "train.py"
        inputs.data = {{ path = "data" }}
        {extra}
        """
    )
    project.write("code/train.py", WORKER)


# -- inputs are data ---------------------------------------------------------


def test_gitignored_and_editor_named_data_files_are_delivered(project: ProjectDir) -> None:
    one_task(project)
    project.write(".gitignore", "data/\n*.csv\n/train.csv\n")
    project.write(".ssmakeignore", "*.bin\n")
    for name in ("train.csv", "4913", ".part.tmp", "x~", "w.bin", ".#lock", "a.swp"):
        project.write(f"data/{name}", name)

    result = project.run()

    assert result.code == 0, result.err
    delivered = {k: bytes.fromhex(v).decode() for k, v in seen(project, "train")["data"].items()}
    names = ("train.csv", "4913", ".part.tmp", "x~", "w.bin", ".#lock", "a.swp")
    assert delivered == {n: n for n in names}
    assert sorted(marker(project, "train")["components"]["inputs"]["data"]["files"]) == sorted(
        names
    )
    project.write("data/4913", "changed")
    assert launched(project.run().err) == ["train"]


def test_a_channel_excludes_its_own_patterns(project: ProjectDir) -> None:
    one_task(project, 'inputs.data.exclude = ["*.tmp", "scratch/"]')
    project.ssmfile(
        (project.root / "Ssmfile.toml")
        .read_text()
        .replace('inputs.data = { path = "data" }\n', "")
        .replace("inputs.data.exclude", 'inputs.data.path = "data"\ninputs.data.exclude')
    )
    project.write("data/keep.txt", "k")
    project.write("data/drop.tmp", "d")
    project.write("data/scratch/x.txt", "s")

    assert project.run().code == 0

    assert list(seen(project, "train")["data"]) == ["keep.txt"]


def test_an_empty_input_is_an_error_unless_allowed(project: ProjectDir) -> None:
    one_task(project)
    (project.root / "data").mkdir()

    result = project.run("-n")

    assert result.code == 2
    assert "input data (data): it has no files" in result.err
    assert "allow_empty = true" in result.err
    text = (project.root / "Ssmfile.toml").read_text()
    project.ssmfile(text.replace('{ path = "data" }', '{ path = "data", allow_empty = true }'))
    assert project.run().code == 0


def test_sharded_input_warns_when_an_instance_gets_no_file(project: ProjectDir) -> None:
    one_task(project, "instance_count = 3")
    text = (project.root / "Ssmfile.toml").read_text()
    project.ssmfile(text.replace('"data" }', '"data", distribution = "ShardedByS3Key" }'))
    project.write("data/only.txt", "1")

    result = project.run()

    assert result.code == 0, result.err
    assert "ShardedByS3Key with 1 file(s) over 3 instances" in result.err


# -- paths ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output_path", "message"),
    [
        ("sub/..", "would hold the project itself"),
        (".ssmake", "is the path of project.store"),
        ("./data", "is the path of tasks.train.inputs.data.path"),
        ("code/out", "lies inside the path of tasks.train.source_dir"),
        ("data/dl", "lies inside the path of tasks.train.inputs.data.path"),
    ],
)
def test_output_path_must_be_a_directory_of_its_own(
    project: ProjectDir, output_path: str, message: str
) -> None:
    one_task(project, f'download = ["model"]\noutput_path = "{output_path}"')
    project.write("data/d.txt", "d")

    result = project.run("-n")

    assert result.code == 2
    assert "tasks.train.output_path" in result.err
    assert message in result.err


def test_a_store_inside_the_project_is_never_packed(project: ProjectDir) -> None:
    project.ssmfile(
        """
        [project]
        name = "p"
        store = "./st"

        [tasks.train]
        source_dir = "."
        entry_point = "code/train.py"
        """
    )
    project.write("code/train.py", WORKER)

    assert project.run().code == 0, project.run().err
    files = json.loads((project.root / "st/p/train/ssmake.json").read_text())["components"]
    assert not [n for n in files["code"]["files"] if n.startswith("st/")]
    assert project.run("--check").code == 0


# -- links and special files ---------------------------------------------------------


def test_a_link_out_of_the_project_is_refused_and_nothing_uploaded(project: ProjectDir) -> None:
    one_task(project)
    project.write("data/d.txt", "d")
    os.symlink("/etc/passwd", project.root / "code" / "passwd")

    result = project.run()

    assert result.code == 1
    assert "code/passwd is a symbolic link to /etc/passwd, outside the project" in result.err
    assert not list(project.store().rglob("*.tar.gz"))
    assert project.run("-n").code == 2


def test_a_link_inside_the_project_is_followed(project: ProjectDir) -> None:
    one_task(project)
    project.write("data/d.txt", "d")
    project.write("shared/conf.txt", "conf")
    os.symlink(project.root / "shared/conf.txt", project.root / "code" / "conf.txt")

    assert project.run().code == 0
    assert bytes.fromhex(seen(project, "train")["code"]["conf.txt"]) == b"conf"


def test_a_fifo_is_refused_without_hanging(project: ProjectDir) -> None:
    one_task(project)
    project.write("data/d.txt", "d")
    os.mkfifo(project.root / "code" / "pipe")

    result = project.run("-n")

    assert result.code == 2
    assert "code/pipe is a fifo" in result.err


def test_a_file_name_that_is_not_utf8_is_fingerprinted_and_packed(project: ProjectDir) -> None:
    one_task(project)
    project.write("data/d.txt", "d")
    name = os.fsdecode(b"caf\xe9.txt")
    (project.root / "code" / name).write_text("latin-1 name")

    result = project.run()

    assert result.code == 0, result.err
    assert name in marker(project, "train")["components"]["code"]["files"]
    assert project.run("--check").code == 0
    (project.root / "code" / name).write_text("changed")
    assert launched(project.run().err) == ["train"]


# -- what is shipped is fingerprinted ---------------------------------------------


def test_an_ignored_inferred_requirements_file_is_fingerprinted(project: ProjectDir) -> None:
    one_task(project)
    project.write("data/d.txt", "d")
    project.write(".gitignore", "requirements.txt\n")
    project.write("code/requirements.txt", "# none\n")

    assert project.run().code == 0
    assert "requirements.txt" in seen(project, "train")["code"]
    assert "requirements.txt" in marker(project, "train")["components"]["code"]["files"]
    project.write("code/requirements.txt", "# still none\n")
    assert launched(project.run().err) == ["train"]


def test_the_exec_bit_is_fingerprinted_and_explained(project: ProjectDir) -> None:
    one_task(project)
    project.write("data/d.txt", "d")
    script = project.write("code/run.sh", "echo\n")
    assert project.run().code == 0

    script.chmod(0o755)

    assert "code: run.sh became executable" in project.run("explain", "train").out
    assert launched(project.run().err) == ["train"]


def test_an_edit_keeping_size_and_mtime_is_seen(project: ProjectDir) -> None:
    one_task(project)
    project.write("data/d.txt", "d")
    helper = project.write("code/helper.py", "X = 1\n")
    assert project.run().code == 0
    before = helper.stat()

    helper.write_text("X = 2\n")
    os.utime(helper, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert launched(project.run().err) == ["train"]


def test_a_type_change_is_explained(project: ProjectDir) -> None:
    one_task(project, "hyperparameters = { lr = 2, flag = true }")
    project.write("data/d.txt", "d")
    assert project.run().code == 0
    text = (project.root / "Ssmfile.toml").read_text()
    project.ssmfile(text.replace("lr = 2, flag = true", "lr = 2.0, flag = 1"))

    out = project.run("explain", "train").out

    assert "hyperparameters.lr: 2 -> 2.0 (int -> float)" in out
    assert "hyperparameters.flag: true -> 1 (bool -> int)" in out


# -- changes while staging ---------------------------------------------------------


def test_a_file_changed_while_staging_is_replanned(project: ProjectDir) -> None:
    one_task(project)
    project.write("data/d.txt", "v1")
    edits = ["v2"]

    def edit(task: str) -> None:
        if edits:
            project.write("data/d.txt", edits.pop())

    runner.STAGING_HOOKS.append(edit)
    try:
        result = project.run()
    finally:
        runner.STAGING_HOOKS.remove(edit)

    assert result.code == 0, result.err
    assert "data/d.txt changed while staging; planning again" in result.err
    assert bytes.fromhex(seen(project, "train")["data"]["d.txt"]) == b"v2"
    assert project.run("--check").code == 0


def test_a_file_that_keeps_changing_fails_the_task_without_a_marker(
    project: ProjectDir,
) -> None:
    one_task(project)
    project.write("data/d.txt", "v0")
    count = iter(range(1, 100))

    def edit(task: str) -> None:
        project.write("code/train.py", WORKER + f"# {next(count)}\n")

    runner.STAGING_HOOKS.append(edit)
    try:
        result = project.run()
    finally:
        runner.STAGING_HOOKS.remove(edit)

    assert result.code == 1
    assert "code/train.py changed while it was being staged; run again" in result.err
    assert not project.store("p", "train", "ssmake.json").exists()


def test_a_code_tarball_packed_before_is_shipped_as_the_snapshot_names_it(
    project: ProjectDir,
) -> None:
    """A rerun of the same code (-B, or an upstream change) ships the tarball packed
    from those files before, named by their content: the job receives what the
    snapshot names even when a file changes after planning, and the next plan sees
    the change."""
    one_task(project)
    project.write("code/helper.py", "v = 1\n")
    project.write("data/d.txt", "d")
    assert project.run().code == 0
    tarballs = sorted(p.name for p in project.store("p", "train", "code").iterdir())

    def edit(task: str) -> None:
        project.write("code/helper.py", "v = 2\n")

    runner.STAGING_HOOKS.append(edit)
    try:
        result = project.run("-B")
    finally:
        runner.STAGING_HOOKS.remove(edit)

    assert result.code == 0, result.err
    assert "changed while staging" not in result.err
    assert sorted(p.name for p in project.store("p", "train", "code").iterdir()) == tarballs
    assert bytes.fromhex(seen(project, "train")["code"]["helper.py"]) == b"v = 1\n"
    named = marker(project, "train")["components"]["code"]["files"]["helper.py"]
    assert named == hashlib.sha256(b"v = 1\n").hexdigest()
    check = project.run("--check")
    assert check.code == 1 and "helper.py" in project.run("explain", "train").out

    assert project.run().code == 0
    assert bytes.fromhex(seen(project, "train")["code"]["helper.py"]) == b"v = 2\n"
    assert len(list(project.store("p", "train", "code").iterdir())) == 2


# -- upstream outputs by content ------------------------------------------------------


def two_tasks(project: ProjectDir, output: str = "model") -> None:
    project.ssmfile(
        f"""
        [project]
        name = "p"

        [tasks.up]
        entry_point = "up.py"
        hyperparameters = {{ v = 1 }}

        [tasks.down]
        entry_point = "down.py"
        inputs.data = {{ task = "up", output = "{output}" }}
        """
    )
    project.write(
        "up.py",
        "import os\nfrom pathlib import Path\n"
        "Path(os.environ['SM_MODEL_DIR'], 'm').write_text('same bytes')\n"
        "Path(os.environ['SSM_STATE_DIR'], 's').write_text(os.environ['SM_HP_V'])\n",
    )
    project.write("down.py", WORKER)


def test_byte_identical_upstream_outputs_do_not_rerun_downstream(project: ProjectDir) -> None:
    two_tasks(project)
    assert launched(project.run().err) == ["down", "up"]
    project.write("up.py", (project.root / "up.py").read_text() + "# a comment\n")

    assert launched(project.run().err) == ["up"]
    assert project.run("--check").code == 0


def test_a_state_input_after_an_upstream_restore(project: ProjectDir) -> None:
    two_tasks(project, output="state")
    assert launched(project.run().err) == ["down", "up"]
    text = (project.root / "Ssmfile.toml").read_text()
    project.ssmfile(text.replace("v = 1", "v = 2"))
    assert launched(project.run().err) == ["down", "up"]
    assert bytes.fromhex(seen(project, "down")["data"]["s"]) == b"2"

    # Back to v = 1: up's run of v = 1 left a state that v = 2 overwrote since, so
    # it is not restored: it runs, and down reads the state that goes with it.
    project.ssmfile(text)
    result = project.run()

    assert result.code == 0, result.err
    assert launched(result.err) == ["down", "up"]
    assert bytes.fromhex(seen(project, "down")["data"]["s"]) == b"1"
    assert project.run("--check").code == 0


def test_a_run_record_whose_outputs_changed_is_ignored(project: ProjectDir) -> None:
    one_task(project, "hyperparameters = { v = 1 }")
    project.write("data/d.txt", "d")
    assert project.run().code == 0
    first = marker(project, "train")
    text = (project.root / "Ssmfile.toml").read_text()
    project.ssmfile(text.replace("v = 1", "v = 2"))
    assert project.run().code == 0
    model = project.store(first["outputs"]["model"]["key"])
    model.write_bytes(model.read_bytes() + b"tampered")
    project.ssmfile(text)

    out = project.run("explain", "train").out

    assert "is ignored: its model in the store is not the one it recorded" in out
    assert launched(project.run().err) == ["train"]


def test_a_replaced_output_is_not_trusted_even_by_the_quick_check(project: ProjectDir) -> None:
    from ssmake.plan import quick

    one_task(project)
    project.write("data/d.txt", "d")
    assert project.run().code == 0
    time.sleep(2.1)  # past the racy window, so that the quick check's snapshot is written
    assert project.run("--check").code == 0
    assert quick.up_to_date(str(project.root))
    model = project.store(marker(project, "train")["outputs"]["model"]["key"])

    model.write_bytes(b"not the job's model")

    assert not quick.up_to_date(str(project.root))
    assert project.run("--check").code == 1
    assert (
        "its model in the store is not the one it recorded" in project.run("explain", "train").out
    )


def test_explain_names_a_tasks_own_changes_beside_its_upstream(project: ProjectDir) -> None:
    two_tasks(project)
    assert project.run().code == 0
    text = (project.root / "Ssmfile.toml").read_text()
    project.ssmfile(text.replace("v = 1", "v = 2"))
    project.write("down.py", WORKER + "# edited\n")

    out = project.run("explain", "down").out

    assert "upstream up will run first" in out
    assert "code: down.py changed" in out
