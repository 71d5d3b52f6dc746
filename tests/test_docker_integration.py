"""Images against a real docker daemon and registry (`.ci/docker-up` provides them).

There is no Docker Hub here: the base image is made locally with `docker import`
from this machine's Python (the interpreter, its standard library and the shared
libraries they load, and a shell). The project's Dockerfile builds on it through
`__BASE_IMAGE__`; ssmake builds it, pushes it to the local registry standing in
for ECR, and runs the job's two instances inside it with `local_docker`.
Skipped, with the reason, when no docker daemon is reachable.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import ProjectDir

pytestmark = pytest.mark.docker

REGISTRY = os.environ.get("SSMAKE_TEST_REGISTRY", "127.0.0.1:5055")
BASE = f"ssmake-test/python:{sys.version_info.major}.{sys.version_info.minor}"
# Not part of an image: big, or needing what the base has not.
_SKIPPED_STDLIB = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip"}


@pytest.fixture(scope="module")
def docker_client() -> Any:
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        reason = f"no docker daemon is reachable ({e}); `.ci/docker-up` starts one"
        print(f"test_docker_integration: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return client


def _registry_up() -> bool:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=2) as response:
            response.read()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def registry(docker_client: Any) -> str:
    if not _registry_up():
        pytest.fail(
            f"docker is up but no registry answers on {REGISTRY}: run `.ci/docker-up` "
            "(or set SSMAKE_TEST_REGISTRY)"
        )
    return REGISTRY


def _libraries(binary: Path) -> set[Path]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    return {Path(p) for p in re.findall(r"(/\S+) \(0x", out)}


def python_rootfs() -> bytes:
    """A tar of a root filesystem that runs this machine's Python and /bin/sh."""
    python = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    shell = Path(os.path.realpath("/bin/sh"))
    binaries = [python, shell, *sorted((stdlib / "lib-dynload").glob("*.so"))]
    files: set[Path] = {python, shell}
    for binary in binaries:
        files |= _libraries(binary)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("tmp", "usr/local/bin", "bin", "opt"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for path in sorted(files):
            tar.add(os.path.realpath(path), arcname=str(path).lstrip("/"), recursive=False)
        for path in sorted(stdlib.rglob("*")):
            rel = path.relative_to(stdlib)
            if rel.parts[0] in _SKIPPED_STDLIB or "__pycache__" in rel.parts or path.is_dir():
                continue
            tar.add(path, arcname=str(path).lstrip("/"), recursive=False)
        for link, target in (("usr/local/bin/python", python), ("bin/sh", shell)):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, str(target)
            tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def base_image(docker_client: Any) -> str:
    """`docker import` of `python_rootfs()`, once per daemon and Python."""
    try:
        docker_client.images.get(BASE)
        return BASE
    except Exception:
        pass
    repository, tag = BASE.split(":")
    docker_client.api.import_image_from_data(
        python_rootfs(),
        repository=repository,
        tag=tag,
        changes=["ENV PATH=/usr/local/bin:/usr/bin:/bin", "ENV PYTHONDONTWRITEBYTECODE=1"],
    )
    return BASE


WORKER = """
import json, os
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
seen = {
    "in_container": Path("/.dockerenv").exists(),
    "baked": Path("/opt/baked.txt").read_text().strip(),
    "run_step": Path("/opt/run.txt").read_text().strip(),
    "model_dir": args.model_dir,
    "state": os.environ["SSM_STATE_DIR"],
    "cwd": os.getcwd(),
    "data": sorted(p.name for p in Path(args.input_data).iterdir()),
    "host": args.current_host,
    "hosts": args.hosts,
    "lr": args.hps["lr"],
}
Path(args.model_dir, f"seen-{args.current_host}.json").write_text(json.dumps(seen))
Path(args.state, f"ran-{args.current_host}").write_text("yes")
print("trained in", seen["cwd"])
"""

DOCKERFILE = """# built on __BASE_IMAGE__
FROM __BASE_IMAGE__
COPY baked.txt /opt/baked.txt
RUN echo from-a-run-step > /opt/run.txt
"""


def _manifest_present(registry: str, name: str, tag: str) -> bool:
    request = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            return True
    except OSError:
        return False


@pytest.fixture
def repository(docker_client: Any) -> Iterator[str]:
    # A new repository each run, so the first push really happens; its local
    # images go afterwards (the registry keeps its copy: layers are shared).
    name = f"ssmake-test/trainer-{uuid.uuid4().hex[:8]}"
    yield name
    for image in docker_client.images.list():
        for tag in image.tags:
            if tag.rsplit(":", 1)[0].endswith(name):
                docker_client.images.remove(tag, force=True)


def test_build_push_and_run_inside_the_image(
    project: ProjectDir, docker_client: Any, registry: str, base_image: str, repository: str
) -> None:
    project.ssmfile(
        f"""
        [project]
        name = "dockertest"

        [tasks.train]
        source_dir = "code"
        entry_point = "train.py"
        dockerfile = "docker"
        local_docker = true
        instance_count = 2
        hyperparameters = {{ lr = 0.1 }}
        inputs.data = {{ path = "data", distribution = "ShardedByS3Key" }}
        image = {{ uri = "{base_image}", repo = "{registry}/{repository}", tag = "latest" }}
        download = ["model"]
        output_path = "out"
        """
    )
    project.write("code/train.py", WORKER)
    project.write("docker/Dockerfile", DOCKERFILE)
    project.write("docker/baked.txt", "baked into the image\n")
    for i in range(4):
        project.write(f"data/f{i}.txt", str(i))

    first = project.run()

    assert first.code == 0, first.err
    assert f"[train docker build] Step 1/3 : FROM {base_image}" in first.err
    pushed = re.search(rf"pushing image {re.escape(registry)}/{repository}:(ssmake-\w+)", first.err)
    assert pushed is not None, first.err
    assert _manifest_present(registry, repository, pushed[1])
    assert _manifest_present(registry, repository, "latest")
    assert f"Running in image {registry}/{repository}:{pushed[1]}" in first.err
    seen = {
        host: json.loads((project.root / f"out/model/seen-{host}.json").read_text())
        for host in ("algo-1", "algo-2")
    }
    for host, doc in seen.items():
        assert doc["in_container"] is True
        assert doc["baked"] == "baked into the image"
        assert doc["run_step"] == "from-a-run-step"
        assert doc["model_dir"] == "/opt/ml/model" and doc["state"] == "/state"
        assert doc["cwd"] == "/opt/ml/code"
        assert doc["host"] == host and doc["hosts"] == ["algo-1", "algo-2"]
        assert doc["lr"] == 0.1
    assert sorted(seen["algo-1"]["data"] + seen["algo-2"]["data"]) == [
        f"f{i}.txt" for i in range(4)
    ]
    assert {p.name for p in project.store("dockertest", "train", "state").iterdir()} >= {
        "ran-algo-1",
        "ran-algo-2",
    }

    # Nothing changed: nothing built, pushed or run; forced: run, still not built.
    again = project.run()
    assert again.code == 0, again.err
    assert "train is up to date" in again.err
    forced = project.run("-B")
    assert forced.code == 0, forced.err
    assert "building image" not in forced.err and "pushing image" not in forced.err
    assert "Running in image" in forced.err

    # A new human tag: set in the registry without a push (the image is unchanged).
    project.write(
        "Ssmfile.toml",
        (project.root / "Ssmfile.toml").read_text().replace('tag = "latest"', 'tag = "v2"'),
    )
    retagged = project.run("-B")
    assert retagged.code == 0, retagged.err
    assert "pushing image" not in retagged.err
    assert _manifest_present(registry, repository, "v2")

    # A failing build step: its output, exit 1, and the marker still the old run's.
    marker = project.store("dockertest", "train", "ssmake.json").read_text()
    project.write("docker/Dockerfile", DOCKERFILE + "RUN echo about to fail && exit 3\n")
    failed = project.run()
    assert failed.code == 1
    assert "failed at Step 4/4 : RUN echo about to fail && exit 3" in failed.err
    assert "returned a non-zero code: 3" in failed.err and "  | about to fail" in failed.err
    assert project.store("dockertest", "train", "ssmake.json").read_text() == marker
    shutil.rmtree(project.root / "out")


# The toolkit's `train` and the modules it imports, found by importing them here.
_TOOLKIT_MODULES = """
import json, os, sys
os.environ.setdefault("SAGEMAKER_BASE_DIR", sys.argv[1])
import sagemaker_training.cli.train, sagemaker_training.entry_point, sagemaker_training.runner
site = next(p for p in sys.path if p.endswith("site-packages"))
tops = {os.path.relpath(m.__file__, site).split(os.sep)[0]
        for m in list(sys.modules.values())
        if (getattr(m, "__file__", None) or "").startswith(site)}
print(json.dumps([site, sorted(t for t in tops if not t.startswith("__editable__"))]))
"""

TOOLKIT_DOCKERFILE = """FROM {base}
COPY libs /
COPY site /opt/site
COPY train which /usr/local/bin/
ENV PYTHONPATH=/opt/site
"""

TOOLKIT_WORKER = """
import json, os, sys
from pathlib import Path
seen = {"env": {k: v for k, v in os.environ.items() if k.startswith("SM_")}, "argv": sys.argv}
out = Path(os.environ["SM_MODEL_DIR"], os.environ["SM_CURRENT_HOST"] + ".json")
out.write_text(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def toolkit_image(docker_client: Any, base_image: str, tmp_path_factory: Any) -> str:
    """The base image with AWS's sagemaker-training toolkit and its `train`, as in every
    SageMaker framework image; built once per daemon."""
    tag = f"ssmake-test/toolkit:{BASE.split(':')[1]}"
    try:
        docker_client.images.get(tag)
        return tag
    except Exception:
        pass
    context = tmp_path_factory.mktemp("toolkit-image")
    out = subprocess.run(
        [sys.executable, "-c", _TOOLKIT_MODULES, str(context / "ml")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    site, tops = json.loads(out)
    for top in tops:
        source = Path(site, top)
        libs = Path(site, f"{top}.libs")  # the shared libraries a wheel bundles
        for path in (source, libs):
            if path.is_dir():
                shutil.copytree(path, context / "site" / path.name)
            elif path.exists():
                (context / "site").mkdir(exist_ok=True)
                shutil.copy2(path, context / "site" / path.name)
    for metadata in Path(site).glob("*.dist-info"):  # read by some at import time
        shutil.copytree(metadata, context / "site" / metadata.name)
    # The system libraries its compiled modules load, where they are here.
    (context / "libs").mkdir()
    for library in sorted(
        {lib for so in (context / "site").rglob("*.so*") for lib in _libraries(so)}
    ):
        target = context / "libs" / str(library).lstrip("/")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(library), target)
    (context / "train").write_text(
        "#!/usr/local/bin/python\nfrom sagemaker_training.cli.train import main\nmain()\n"
    )
    (context / "which").write_text('#!/bin/sh\ncommand -v "$1"\n')  # the toolkit asks it
    for script in ("train", "which"):
        (context / script).chmod(0o755)
    (context / "Dockerfile").write_text(TOOLKIT_DOCKERFILE.format(base=base_image))
    docker_client.images.build(path=str(context), tag=tag, rm=True)
    return tag


def test_local_docker_runs_the_images_train_as_sagemaker_does(
    project: ProjectDir, docker_client: Any, toolkit_image: str
) -> None:
    project.ssmfile(
        f"""
        [project]
        name = "toolkit"

        [tasks.train]
        entry_point = "train.py"
        local_docker = true
        instance_count = 2
        instance_type = "ml.c5.xlarge"
        hyperparameters = {{ k = 5, verbose = true }}
        image = {{ uri = "{toolkit_image}" }}
        download = ["model", "logs"]
        output_path = "out"
        """
    )
    project.write("train.py", TOOLKIT_WORKER)

    result = project.run()

    assert result.code == 0, result.err
    log = (project.root / "out" / "logs" / "logs0").read_text()
    # The toolkit ran the entry point, and reported as it does on SageMaker.
    assert "Reporting training SUCCESS" in log
    for host in ("algo-1", "algo-2"):
        seen = json.loads((project.root / "out" / "model" / f"{host}.json").read_text())
        assert seen["argv"][1:] == ["-k", "5", "--verbose", "True"]
        env = seen["env"]
        assert env["SM_CURRENT_HOST"] == host
        assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.c5.xlarge"
        assert env["SM_MODULE_DIR"] == "/opt/ml/code" and env["SM_MODEL_DIR"] == "/opt/ml/model"
        training_env = json.loads(env["SM_TRAINING_ENV"])
        assert training_env["master_hostname"] == "algo-1"
        assert training_env["is_master"] is (host == "algo-1")
