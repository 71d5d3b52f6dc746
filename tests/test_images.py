"""Images: framework lookup, rendered Dockerfiles, content tags, build and push decisions.

Docker is `RecordingBuilder`, a complete fake (it holds images and registries'
tags, so skip decisions are real); ECR is moto; jobs on "SageMaker" run through
the emulator. The test against a real daemon is test_docker_integration.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from recording_builder import RecordingBuilder

from ssmake.backends.local.containers import container_command, mounts
from ssmake.errors import ConfigError, ImageError
from ssmake.events import LogLine
from ssmake.images import resolve as images
from ssmake.images.builder import split_ref
from ssmake.images.frameworks import (
    MISSING_EXTRA,
    FrameworkImages,
    FrameworkVersions,
    SageMakerCatalog,
)
from ssmake.images.registries import DockerRegistry, EcrRegistry, split_repository
from ssmake.images.resolve import ImageService, default_repository, local_label
from ssmake.plan.docker_context import DockerIgnore, content_tag, context_files, render_dockerfile
from ssmake.plan.fingerprint import Fingerprinter
from ssmake.plan.hashcache import HashCache
from ssmake.project.model import Image, Project, Task

if TYPE_CHECKING:
    from aws_fixtures import AwsEnv, SageMakerEmulator
    from conftest import ProjectDir

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
DLC = "763104351884.dkr.ecr.us-east-1.amazonaws.com"
CPU_BASE = f"{DLC}/pytorch-training:2.1.0-cpu-py310"


class FakeCatalog:
    """sagemaker's tables in miniature, with its URI scheme."""

    TABLES = {
        "pytorch": FrameworkVersions(
            {"1.13.1": ("py39",), "2.1.0": ("py310",), "2.3.0": ("py311", "py310")},
            {"1.13": "1.13.1", "2.1": "2.1.0", "2.3": "2.3.0"},
        ),
        "tensorflow": FrameworkVersions({"2.13.0": ("py310",)}, {"2.13": "2.13.0"}),
    }

    def __init__(self) -> None:
        self.lookups = 0

    def versions(self, framework: str) -> FrameworkVersions:
        return self.TABLES[framework]

    def image_uri(
        self, framework: str, version: str, python_version: str, region: str, instance_type: str
    ) -> str:
        self.lookups += 1
        processor = "gpu" if instance_type.startswith(("ml.p", "ml.g")) else "cpu"
        host = f"763104351884.dkr.ecr.{region}.amazonaws.com"
        return f"{host}/{framework}-training:{version}-{processor}-{python_version}"


@pytest.fixture
def builder(monkeypatch: pytest.MonkeyPatch) -> RecordingBuilder:
    """The fake docker every ImageService of the test uses; the framework base is
    in the registry, as DLC images are."""
    fake = RecordingBuilder(remote={CPU_BASE: "dlc-base"})
    monkeypatch.setitem(images.BUILDERS, "docker", lambda: fake)
    monkeypatch.setitem(images.CATALOGS, "sagemaker", FakeCatalog)
    return fake


def no_docker() -> images.ImageBuilder:
    raise AssertionError("docker was asked for")


# -- the build context ---------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_dockerignore_follows_docker_rules(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Dockerfile": "FROM __BASE_IMAGE__\n",
            ".dockerignore": "# comment\nDockerfile\n/data\n**/*.log\nbuild\n!build/keep.txt\n",
            "app.py": "",
            "data/big.bin": "",
            "sub/data/small.txt": "",
            "sub/x.log": "",
            "build/out.o": "",
            "build/keep.txt": "",
            ".git/HEAD": "",
            "pkg/__pycache__/m.pyc": "",
            ".ssmake/cache/hashes.bin": "",
            "out/report/model": "",
        },
    )

    names = [rel for rel, _st, _path in context_files(tmp_path, frozenset({"out/report"}))]

    # Anchored at the context root (unlike .gitignore), `**` across directories, a
    # `!` exception inside an excluded directory; Dockerfile and .dockerignore are
    # always sent; ssmake's own and never-image directories are not.
    assert names == [
        ".dockerignore",
        "Dockerfile",
        "app.py",
        "build/keep.txt",
        "sub/data/small.txt",
    ]
    assert DockerIgnore("a/*/c\n").excludes("a/b/c/d.txt")
    assert not DockerIgnore("a/*/c\n").excludes("a/b/x/c")


def test_content_tag_names_the_rendered_dockerfile_and_its_context() -> None:
    rendered = render_dockerfile("FROM __BASE_IMAGE__\nCOPY . /app\n", CPU_BASE)
    tag = content_tag(rendered, {"app.py": "1" * 64})

    assert rendered == f"FROM {CPU_BASE}\nCOPY . /app\n"
    assert tag.startswith("ssmake-") and len(tag) == len("ssmake-") + 24
    assert content_tag(rendered, {"app.py": "1" * 64}) == tag
    assert content_tag(rendered, {"app.py": "2" * 64}) != tag
    assert content_tag(rendered, {"app2.py": "1" * 64}) != tag
    assert content_tag(render_dockerfile("FROM __BASE_IMAGE__\n", "other"), {}) != tag


def test_references_split_as_docker_reads_them() -> None:
    assert split_ref("localhost:5000/a/b:t1") == ("localhost:5000/a/b", "t1")
    assert split_ref("localhost:5000/a/b") == ("localhost:5000/a/b", "latest")
    assert split_repository("trainer") == (None, "trainer")
    assert split_repository("team/trainer") == (None, "team/trainer")
    assert split_repository(f"{ECR}/trainer") == (ECR, "trainer")
    assert split_repository("localhost:5000/trainer") == ("localhost:5000", "trainer")
    assert default_repository("My_Project", "train") == "ssmake/my_project/train"
    assert DockerRegistry("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert DockerRegistry("registry.example.com").base == "https://registry.example.com"


# -- framework images ------------------------------------------------------------------


def framework_uri(**fields: Any) -> str:
    task = Task(name="train", entry_point="train.py", **fields)
    return FrameworkImages(FakeCatalog()).uri(task, lambda: "eu-west-1")


def test_framework_defaults_and_spellings() -> None:
    host = "763104351884.dkr.ecr.eu-west-1.amazonaws.com"
    # No version: the pinned default, and its newest python.
    assert framework_uri() == f"{host}/pytorch-training:2.1.0-cpu-py310"
    assert framework_uri(framework="tensorflow") == f"{host}/tensorflow-training:2.13.0-cpu-py310"
    # A short version, python spelled several ways, a GPU instance type.
    assert framework_uri(framework_version="2.3") == f"{host}/pytorch-training:2.3.0-cpu-py311"
    for spelling in ("3.10", "py310", "310", "py3.10"):
        uri = framework_uri(framework_version="2.3.0", python_version=spelling)
        assert uri == f"{host}/pytorch-training:2.3.0-cpu-py310"
    gpu = framework_uri(instance_type="ml.p3.2xlarge")
    assert gpu == f"{host}/pytorch-training:2.1.0-gpu-py310"


def test_bad_versions_name_the_valid_choices() -> None:
    with pytest.raises(ConfigError) as bad_version:
        framework_uri(framework_version="9.9")
    with pytest.raises(ConfigError) as bad_python:
        framework_uri(framework_version="2.1", python_version="2.7")

    assert str(bad_version.value) == (
        "task train: framework_version '9.9' has no SageMaker pytorch training image; "
        "choose one of 1.13, 2.1, 2.3 (upgrade the sagemaker package for newer ones), "
        "or set image.uri"
    )
    assert str(bad_python.value) == (
        "task train: python_version '2.7' has no pytorch 2.1.0 training image; choose one of py310"
    )


def test_without_the_sagemaker_extra_the_error_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sagemaker", None)
    monkeypatch.setitem(sys.modules, "sagemaker.core", None)
    task = Task(name="train", entry_point="train.py")

    with pytest.raises(ConfigError) as error:
        FrameworkImages(SageMakerCatalog()).uri(task, lambda: "us-east-1")

    assert str(error.value) == MISSING_EXTRA
    assert "pip install 'ssmake[sagemaker]'" in MISSING_EXTRA and "image.uri" in MISSING_EXTRA


# -- building --------------------------------------------------------------------------


def service(
    root: Path,
    tasks: dict[str, Task],
    *,
    backend: str = "local",
    builder: images.ImageBuilder | None = None,
    events: list[Any] | None = None,
) -> ImageService:
    project = Project("demo", root, root / "Ssmfile.toml", region="us-east-1", tasks=tasks)
    fingerprinter = Fingerprinter(project, HashCache(None))
    sink = events if events is not None else []
    return ImageService(
        project, fingerprinter, backend=backend, report=sink.append, builder=builder
    )


def docker_task(**fields: Any) -> Task:
    fields.setdefault("dockerfile", "docker")
    fields.setdefault("local_docker", True)
    return Task(name="train", entry_point="train.py", **fields)


CONTEXT = {
    "docker/Dockerfile": "# __BASE_IMAGE__ is replaced\nFROM __BASE_IMAGE__\nCOPY extra.txt /\n",
    "docker/extra.txt": "one\n",
    "docker/.dockerignore": "notes.md\n",
    "docker/notes.md": "not sent\n",
    "train.py": "print('hi')\n",
}


def test_local_backend_without_local_docker_needs_no_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, CONTEXT)
    monkeypatch.setitem(images.BUILDERS, "docker", no_docker)
    task = docker_task(local_docker=False, framework_version="2.1")

    assert service(tmp_path, {"train": task}).resolve(task) == "local/pytorch:2.1"
    assert local_label(Task(name="t", entry_point="t.py")) == "local/pytorch"


def test_dockerfile_is_rendered_built_and_tagged(
    tmp_path: Path, aws: AwsEnv, builder: RecordingBuilder
) -> None:
    write(tmp_path, CONTEXT)
    task = docker_task(image=Image(local_repo="trainer", tag="v1"))
    events: list[Any] = []

    ref = service(tmp_path, {"train": task}, events=events).resolve(task)

    [build] = builder.builds
    assert build.dockerfile == f"# {CPU_BASE} is replaced\nFROM {CPU_BASE}\nCOPY extra.txt /\n"
    assert [name for name, _path in build.files] == [".dockerignore", "Dockerfile", "extra.txt"]
    digests = {
        name: hashlib.sha256(Path(path).read_bytes()).hexdigest() for name, path in build.files
    }
    assert ref == f"trainer:{content_tag(build.dockerfile, digests)}"
    assert build.tags == (ref,)
    assert builder.tags == [(ref, "trainer:v1")]
    assert builder.images["trainer:v1"] == builder.images[ref]
    assert builder.pulls == [CPU_BASE]  # the base, pulled by the build from its registry
    assert builder.pushes == []  # no repo on the local backend: nothing to push
    lines = [e.line for e in events if isinstance(e, LogLine) and e.host == "docker build"]
    assert lines[0] == f"Step 1/2 : FROM {CPU_BASE}" and lines[-1] == "Successfully tagged " + ref


def test_unchanged_image_is_never_rebuilt_and_a_changed_one_always_is(
    tmp_path: Path, aws: AwsEnv, builder: RecordingBuilder
) -> None:
    write(tmp_path, CONTEXT)
    task = docker_task()
    first = service(tmp_path, {"train": task}).resolve(task)

    # A new run, nothing changed, and a file the build is not sent changed.
    again = service(tmp_path, {"train": task}).resolve(task)
    (tmp_path / "docker/notes.md").write_text("edited\n")
    (tmp_path / "train.py").write_text("print('edited')\n")
    ignored = service(tmp_path, {"train": task}).resolve(task)
    assert first == again == ignored
    assert len(builder.builds) == 1

    (tmp_path / "docker/extra.txt").write_text("two\n")
    changed = service(tmp_path, {"train": task}).resolve(task)

    assert changed != first and changed.startswith(default_repository("demo", "train") + ":")
    assert len(builder.builds) == 2


def test_dockerfile_content_and_an_explicit_base(
    tmp_path: Path, builder: RecordingBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(images.CATALOGS, "sagemaker", no_docker)  # no framework lookup
    builder.images["my/base:1"] = "base"
    content = Task(
        name="api",
        entry_point="train.py",
        dockerfile_content="FROM __BASE_IMAGE__\nRUN pip install pandas\n",
        image=Image(uri="my/base:1"),
        local_docker=True,
    )
    fixed = docker_task(local_docker=True)
    write(tmp_path, {"docker/Dockerfile": "FROM my/base:1\n"})

    images_ = service(tmp_path, {"api": content, "train": fixed})
    images_.resolve(content)
    images_.resolve(fixed)

    first, second = builder.builds
    assert first.dockerfile == "FROM my/base:1\nRUN pip install pandas\n" and first.files == ()
    assert second.dockerfile == "FROM my/base:1\n"
    assert builder.pulls == []


def test_local_docker_pulls_a_missing_framework_image_after_an_ecr_login(
    tmp_path: Path, aws: AwsEnv, builder: RecordingBuilder
) -> None:
    task = Task(name="train", entry_point="train.py", local_docker=True)
    images_ = service(tmp_path, {"train": task})

    assert images_.resolve(task) == CPU_BASE
    assert images_.resolve(task) == CPU_BASE

    assert builder.pulls == [CPU_BASE]
    assert builder.logins == [f"https://{DLC}"]  # the framework images' registry


def test_build_failure_says_which_step_with_its_output(
    tmp_path: Path, aws: AwsEnv, builder: RecordingBuilder
) -> None:
    write(tmp_path, {"docker/Dockerfile": "FROM __BASE_IMAGE__\nRUN make it\nCOPY . /\n"})
    builder.fail_build = "RUN make"
    task = docker_task()

    with pytest.raises(ImageError) as error:
        service(tmp_path, {"train": task}).resolve(task)

    message = str(error.value)
    assert message.startswith(f"docker build of {default_repository('demo', 'train')}:ssmake-")
    assert "failed at Step 2/3 : RUN make it: The command '/bin/sh -c make it' returned" in message
    assert message.endswith("\n  | make it: failing as asked")
    assert error.value.exit_code == 1


# -- pushing to ECR --------------------------------------------------------------------


def put_in_ecr(aws: AwsEnv) -> Any:
    """What a docker push does to ECR, for the fake builder's pushes."""
    ecr = aws.client("ecr")

    def on_push(ref: str, image_id: str) -> None:
        repo, tag = split_ref(ref)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": f"sha256:{image_id}", "size": 1, "mediaType": "config"},
            # moto names an image by its layers
            "layers": [{"digest": f"sha256:{image_id}", "size": 1, "mediaType": "layer"}],
        }
        name = repo.split("/", 1)[1]
        ecr.put_image(repositoryName=name, imageManifest=json.dumps(manifest), imageTag=tag)

    return on_push


def ecr_tags(aws: AwsEnv, name: str) -> set[str]:
    found = aws.client("ecr").describe_images(repositoryName=name)["imageDetails"]
    return {tag for image in found for tag in image.get("imageTags", [])}


def test_sagemaker_pushes_to_ecr_once_and_creates_the_repository(
    tmp_path: Path, aws: AwsEnv, builder: RecordingBuilder
) -> None:
    write(tmp_path, CONTEXT)
    builder.on_push = put_in_ecr(aws)
    task = docker_task(local_docker=False, image=Image(repo="trainer", tag="latest"))
    events: list[Any] = []

    uri = service(tmp_path, {"train": task}, backend="sagemaker", events=events).resolve(task)

    tag = split_ref(uri)[1]
    assert uri == f"{ECR}/trainer:{tag}"
    assert f"created ECR repository {ECR}/trainer" in [getattr(e, "message", "") for e in events]
    assert builder.pushes == [uri, f"{ECR}/trainer:latest"]
    assert set(builder.logins) == {f"https://{DLC}", f"https://{ECR}"}
    assert ecr_tags(aws, "trainer") == {tag, "latest"}

    # Another machine (a fresh docker) with the same files: no build, no push.
    elsewhere = RecordingBuilder()
    again = service(tmp_path, {"train": task}, backend="sagemaker", builder=elsewhere)
    assert again.resolve(task) == uri
    assert (elsewhere.builds, elsewhere.pushes, elsewhere.pulls) == ([], [], [])

    # A new human tag moves in the registry alone, without docker.
    retagged = docker_task(local_docker=False, image=Image(repo="trainer", tag="v2"))
    service(tmp_path, {"train": retagged}, backend="sagemaker", builder=elsewhere).resolve(retagged)
    assert elsewhere.pushes == [] and ecr_tags(aws, "trainer") == {tag, "latest", "v2"}

    # A changed context is built and pushed.
    (tmp_path / "docker/extra.txt").write_text("two\n")
    changed = service(tmp_path, {"train": task}, backend="sagemaker").resolve(task)
    assert changed != uri and builder.pushes[-2:] == [changed, f"{ECR}/trainer:latest"]
    assert len(builder.builds) == 2


def test_default_repository_on_sagemaker_and_push_denied(
    tmp_path: Path, aws: AwsEnv, builder: RecordingBuilder
) -> None:
    write(tmp_path, CONTEXT)
    builder.deny_push = True
    task = docker_task(local_docker=False)

    with pytest.raises(ImageError) as error:
        service(tmp_path, {"train": task}, backend="sagemaker").resolve(task)

    assert "docker push of 123456789012.dkr.ecr.us-east-1.amazonaws.com/ssmake/demo/train:" in str(
        error.value
    )
    assert "denied: not authorized" in str(error.value) and "ecr:PutImage" in str(error.value)
    assert EcrRegistry("us-east-1").digest("ssmake/demo/train", "anything") is None


# -- whole runs ------------------------------------------------------------------------

SAGEMAKER = """
[project]
name = "demo"
backend = "sagemaker"
store = "s3://bucket"
region = "us-east-1"

[tasks.train]
entry_point = "train.py"
source_dir = "code"
dockerfile = "docker"
image = { repo = "trainer", tag = "latest" }
"""


def test_sagemaker_job_runs_the_pushed_image_and_only_image_edits_rerun(
    project: ProjectDir,
    aws: AwsEnv,
    sagemaker_emulator: SageMakerEmulator,
    builder: RecordingBuilder,
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    builder.on_push = put_in_ecr(aws)
    project.ssmfile(SAGEMAKER)
    project.write("code/train.py", "print('trained')\n")
    project.write("docker/Dockerfile", "FROM __BASE_IMAGE__\nRUN pip install pandas\n")
    project.write("docker/.dockerignore", "scratch\n")
    project.write("docker/scratch/tmp.txt", "x\n")
    project.write("README.md", "outside the context\n")

    first = project.run()

    assert first.code == 0, first.err
    [request] = sagemaker_emulator.requests
    image = request["AlgorithmSpecification"]["TrainingImage"]
    assert image.startswith(f"{ECR}/trainer:ssmake-")
    assert builder.pushes == [image, f"{ECR}/trainer:latest"]
    assert f"created ECR repository {ECR}/trainer" in first.err
    assert f"[train docker build] Step 1/2 : FROM {CPU_BASE}" in first.err  # progress

    project.write("README.md", "edited\n")
    project.write("docker/scratch/tmp.txt", "edited\n")
    unchanged = project.run()

    assert unchanged.code == 0, unchanged.err
    assert "train is up to date" in unchanged.err
    assert (len(builder.builds), len(builder.pushes), len(sagemaker_emulator.requests)) == (1, 2, 1)

    project.write("docker/Dockerfile", "FROM __BASE_IMAGE__\nRUN pip install polars\n")
    edited = project.run()

    assert edited.code == 0, edited.err
    assert "image: Dockerfile changed" in edited.err
    second = sagemaker_emulator.requests[-1]["AlgorithmSpecification"]["TrainingImage"]
    assert second != image and builder.pushes[-2] == second
    assert len(builder.builds) == 2


def test_a_failed_build_fails_the_task_without_a_marker(
    project: ProjectDir,
    aws: AwsEnv,
    sagemaker_emulator: SageMakerEmulator,
    builder: RecordingBuilder,
) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    builder.fail_build = "RUN false"
    project.ssmfile(SAGEMAKER)
    project.write("code/train.py", "print('trained')\n")
    project.write("docker/Dockerfile", "FROM __BASE_IMAGE__\nRUN false\n")

    result = project.run()

    assert result.code == 1
    assert "train: FAILED: docker build of trainer:ssmake-" in result.err
    assert (
        "failed at Step 2/2 : RUN false" in result.err
        and "  | false: failing as asked" in result.err
    )
    assert sagemaker_emulator.requests == []
    listed = aws.client("s3").list_objects_v2(Bucket="bucket").get("Contents", [])
    assert not any(o["Key"].endswith("ssmake.json") for o in listed)


LOCAL = """
[project]
name = "demo"

[tasks.train]
entry_point = "code/train.py"
dockerfile = "docker"
"""


def test_image_edits_rerun_a_local_task_and_other_edits_do_not(project: ProjectDir) -> None:
    project.ssmfile(LOCAL)
    project.write("code/train.py", "print('trained')\n")
    project.write("code/notes.txt", "not code of the task\n")
    project.write("docker/Dockerfile", "FROM __BASE_IMAGE__\n")
    project.write("docker/.dockerignore", "*.md\n")
    project.write("docker/setup.cfg", "a = 1\n")
    project.write("docker/README.md", "ignored by docker\n")
    project.write(".gitignore", "docker/generated.txt\n")
    assert project.run().code == 0

    project.write("code/notes.txt", "edited\n")
    project.write("docker/README.md", "edited\n")
    assert "train is up to date" in project.run().err

    project.write("docker/setup.cfg", "a = 2\n")
    context_edit = project.run()
    assert "image context: setup.cfg changed" in context_edit.err

    # docker sends git-ignored files: they count.
    project.write("docker/generated.txt", "new\n")
    assert "image context: generated.txt added" in project.run().err

    project.write("docker/Dockerfile", "FROM __BASE_IMAGE__\nRUN true\n")
    assert "image: Dockerfile changed" in project.run().err


def test_docker_not_running_is_a_clear_error(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{project.root}/no-docker.sock")
    project.ssmfile(
        LOCAL.replace('dockerfile = "docker"', 'local_docker = true\nimage = { uri = "base:1" }')
    )
    project.write("code/train.py", "print('trained')\n")

    result = project.run()

    assert result.code == 1
    assert "train: FAILED: cannot reach the docker daemon" in result.err
    assert "Traceback" not in result.err
    assert not project.store("demo", "train", "ssmake.json").exists()


def test_a_framework_image_without_the_extra_says_what_to_do(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sagemaker", None)
    monkeypatch.setitem(sys.modules, "sagemaker.core", None)
    project.ssmfile(LOCAL.replace('dockerfile = "docker"', "local_docker = true"))
    project.write("code/train.py", "print('trained')\n")

    result = project.run()

    assert result.code == 1
    assert f"train: FAILED: {MISSING_EXTRA}" in result.err
    assert not project.store("demo", "train", "ssmake.json").exists()


def test_a_container_runs_the_entry_point_as_sagemaker_does(tmp_path: Path) -> None:
    code = tmp_path / "algo-1" / "code"
    code.mkdir(parents=True)
    # The image's own train (the toolkit's) when it has one, else as the toolkit runs it.
    train_first = "if command -v train >/dev/null 2>&1; then exec train; fi; "

    assert container_command(code, "train.py", ["--lr", "0.1"]) == [
        "sh",
        "-c",
        train_first + 'exec "$@"',
        "sh",
        "python",
        "--",
        "train.py",
        "--lr",
        "0.1",
    ]
    (code / "requirements.txt").write_text("pandas\n")
    command = container_command(code, "train.py", ["--name", "a b"])
    assert command[:2] == ["sh", "-c"]
    assert command[3:] == ["sh", "python", "--", "train.py", "--name", "a b"]
    assert command[2] == train_first + 'python -m pip install -q -r requirements.txt && exec "$@"'
    binds = mounts(tmp_path / "algo-1", tmp_path / "algo-1" / "state")
    assert {v["bind"] for v in binds.values()} == {"/opt/ml", "/state"}


def test_two_clones_running_one_job_never_share_a_container_name(tmp_path: Path) -> None:
    # The same project in two directories has the same job names; the container of
    # one must not be taken for a stale container of the other and removed.
    from ssmake.backends.local.instances import Instance
    from ssmake.backends.local.supervise import container_name

    a = container_name("train-0123456789-1", Instance("algo-1", tmp_path / "a" / "algo-1"))
    b = container_name("train-0123456789-1", Instance("algo-1", tmp_path / "b" / "algo-1"))
    again = container_name("train-0123456789-1", Instance("algo-1", tmp_path / "a" / "algo-1"))

    assert a != b and a == again
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", a) and a.startswith("ssmake-train-")
