"""Storage faults between ssmake and S3 (a moto server behind a fault-injecting proxy).

The project runs on the local backend with its store in a bucket, so every
byte goes through S3: the input sync, the code upload, the job fetching its
code and channels, its outputs, the marker, and the download of the results.
Transient faults at each step are retried and the build succeeds; persistent
ones end it with a clear error, no marker, and no download that looks complete.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ReadTimeoutError
from faultproxy import Fault, FaultProxy

from ssmake import aws as ssmake_aws
from ssmake.build.downloads import downloaded_job

if TYPE_CHECKING:
    from aws_fixtures import AwsEnv, SageMakerEmulator
    from conftest import ProjectDir, Result

BUCKET = "faulty"
PROJECT = "demo"

SSMFILE = f"""
[project]
name = "{PROJECT}"
store = "s3://{BUCKET}"

[tasks.train]
entry_point = "train.py"
inputs.data = {{ path = "data" }}
download = ["model", "output"]
output_path = "out"
"""

TRAIN = """
from pathlib import Path
from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
seen = sorted(p.name for p in Path(args.input_data).iterdir())
Path(args.model_dir, "model.txt").write_text(",".join(seen))
Path(args.output_data_dir, "out.txt").write_text("done")
Path(args.state, "progress").write_text("kept")
"""

# Each step of a build, by the S3 requests it makes.
STEPS = {
    "input sync": ("PUT", rf"^/{BUCKET}/{PROJECT}/train/input/data/"),
    "code upload": ("PUT", rf"^/{BUCKET}/{PROJECT}/train/code/"),
    "claim": ("PUT", rf"^/{BUCKET}/{PROJECT}/train/inflight\.json$"),
    "job fetching its inputs": ("GET", rf"^/{BUCKET}/{PROJECT}/train/input/data/"),
    "job uploading its model": ("PUT", r"/output/model\.tar\.gz$"),
    "marker write": ("PUT", rf"^/{BUCKET}/{PROJECT}/train/ssmake\.json$"),
    "download": ("GET", r"/output/model\.tar\.gz$"),
}


@pytest.fixture
def proxy(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """ssmake's AWS requests go through the proxy; the test's own go straight to moto."""
    proxy = FaultProxy(aws.endpoint).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    aws.client("s3").create_bucket(Bucket=BUCKET)
    yield proxy
    proxy.stop()


@pytest.fixture
def demo(project: ProjectDir) -> ProjectDir:
    project.ssmfile(SSMFILE)
    project.write("train.py", TRAIN)
    for name in ("a.txt", "b.txt"):
        project.write(f"data/{name}", name)
    return project


def s3_keys(aws: AwsEnv) -> list[str]:
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def downloaded(demo: ProjectDir) -> str | None:
    """The job whose results out/ holds, as ssmake's bookkeeping (under .ssmake/) says."""
    return downloaded_job(demo.store("cache"), demo.root / "out")


def s3_marker(aws: AwsEnv) -> dict[str, Any] | None:
    try:
        body = aws.client("s3").get_object(Bucket=BUCKET, Key=f"{PROJECT}/train/ssmake.json")
    except aws.client("s3").exceptions.NoSuchKey:
        return None
    doc: dict[str, Any] = json.loads(body["Body"].read())
    return doc


def assert_built(demo: ProjectDir, aws: AwsEnv, seen: str = "a.txt,b.txt") -> None:
    """The marker, its model in the bucket, the download: all there, all agreeing."""
    marker = s3_marker(aws)
    assert marker is not None
    key = marker["outputs"]["model"]["key"]
    body = aws.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("model.txt")
        assert member is not None and member.read().decode() == seen
    assert (demo.root / "out" / "model" / "model.txt").read_text() == seen
    assert downloaded(demo) == marker["job"]
    assert not any(k.endswith("inflight.json") for k in s3_keys(aws))


# Every step, and every kind of fault, at least once.
TRANSIENT = [
    ("input sync", "500"),
    ("code upload", "503"),
    ("code upload", "reset-after"),
    ("claim", "reset-after"),
    ("job fetching its inputs", "truncate"),
    ("job uploading its model", "reset"),
    ("marker write", "throttle"),
    ("download", "truncate"),
]


@pytest.mark.parametrize(("step", "action"), TRANSIENT, ids=[f"{s}: {a}" for s, a in TRANSIENT])
def test_a_transient_fault_is_retried_and_the_build_succeeds(
    demo: ProjectDir, aws: AwsEnv, proxy: FaultProxy, step: str, action: str
) -> None:
    method, path = STEPS[step]
    proxy.add(Fault(action, path=path, method=method, times=1))

    result = demo.run()

    assert result.code == 0, result.err
    assert proxy.injected(action), f"no request of {step} was made"
    outcomes = proxy.requests(method, path)
    assert outcomes[0] == action and "forwarded" in outcomes[1:]  # retried
    assert_built(demo, aws)


PERSISTENT = [
    ("input sync", "500", "cannot upload"),
    ("code upload", "throttle", "AWS is throttling requests (SlowDown) even after retries"),
    ("job fetching its inputs", "reset", "cannot download"),
    ("marker write", "503", "cannot write s3://faulty/demo/train/ssmake.json"),
    ("job uploading its model", "503", "model.tar.gz"),
]


@pytest.mark.parametrize(
    ("step", "action", "message"), PERSISTENT, ids=[f"{s}: {a}" for s, a, _ in PERSISTENT]
)
def test_a_persistent_fault_fails_clearly_and_marks_nothing(
    demo: ProjectDir,
    aws: AwsEnv,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    action: str,
    message: str,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # the user's retry setting, honoured
    method, path = STEPS[step]
    proxy.add(Fault(action, path=path, method=method, times=1000))

    result = demo.run()

    assert result.code == 1, result.err
    assert message in result.err
    assert result.err.count("FAILED") == 1, result.err  # reported once, with its cause
    assert "Traceback" not in result.err
    assert len(proxy.requests(method, path)) >= 2  # it was retried before giving up
    assert s3_marker(aws) is None
    assert not (demo.root / "out").exists()
    assert not any(k.endswith("inflight.json") for k in s3_keys(aws))

    proxy.clear()
    again = demo.run()
    assert again.code == 0, again.err  # nothing was lost: the next run completes
    assert_built(demo, aws)


def test_a_download_that_keeps_failing_never_looks_complete(
    demo: ProjectDir, aws: AwsEnv, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert demo.run().code == 0
    first = downloaded(demo)
    demo.write("data/c.txt", "c")  # a new job, whose download will fail
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    method, path = STEPS["download"]
    proxy.add(Fault("truncate", path=path, method=method, times=1000))

    result = demo.run()

    assert result.code in (1, 2), result.err
    assert "cannot download" in result.err
    out = demo.root / "out"
    assert downloaded(demo) == first  # still the last complete download
    assert (out / "model" / "model.txt").read_text() == "a.txt,b.txt"
    assert not [p for p in out.rglob("*") if p.name.startswith(".download")]
    marker = s3_marker(aws)
    assert marker is not None and marker["job"] != first  # the job itself completed

    proxy.clear()
    assert demo.run().code == 0
    assert downloaded(demo) == marker["job"]
    assert (out / "model" / "model.txt").read_text() == "a.txt,b.txt,c.txt"


# -- timeouts, multipart uploads, the SageMaker API -------------------------------


@pytest.fixture
def time_out() -> Iterator[Callable[[str, str, int], list[str]]]:
    """`time_out(operation, path, times)`: the first `times` S3 `operation` requests
    for a key matching `path` get no answer in time (botocore's ReadTimeoutError,
    raised where a real one is, without waiting out the 60 s read timeout)."""
    removers: list[Callable[[], None]] = []

    def install(operation: str, path: str, times: int) -> list[str]:
        timed_out: list[str] = []

        def handler(request: Any, **_: Any) -> None:
            url = urlsplit(request.url)
            if len(timed_out) < times and re.search(path, url.path):
                timed_out.append(url.path)
                raise ReadTimeoutError(endpoint_url=request.url, error="injected")

        removers.append(ssmake_aws.add_event_hook(f"before-send.s3.{operation}", handler))
        return timed_out

    yield install
    for remove in removers:
        remove()


def test_a_request_that_times_out_is_retried(
    demo: ProjectDir, aws: AwsEnv, proxy: FaultProxy, time_out: Callable[[str, str, int], list[str]]
) -> None:
    marker_writes = time_out("PutObject", STEPS["marker write"][1], 2)

    result = demo.run()

    assert result.code == 0, result.err
    assert len(marker_writes) == 2
    assert_built(demo, aws)


def test_requests_that_keep_timing_out_fail_clearly(
    demo: ProjectDir,
    aws: AwsEnv,
    proxy: FaultProxy,
    time_out: Callable[[str, str, int], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    code_uploads = time_out("PutObject", STEPS["code upload"][1], 1000)

    result = demo.run()

    assert result.code in (1, 2), result.err
    assert "cannot upload" in result.err and "AWS did not answer in time" in result.err
    assert len(code_uploads) == 2
    assert s3_marker(aws) is None


def test_a_multipart_upload_survives_a_failed_part(
    demo: ProjectDir, aws: AwsEnv, proxy: FaultProxy
) -> None:
    # Over the 8 MiB threshold: uploaded in parts, one of which is lost once.
    demo.write("data/b.txt", "b" * (9 << 20))
    proxy.add(Fault("reset", method="PUT", path=STEPS["input sync"][1], query="partNumber=2"))

    result = demo.run()

    assert result.code == 0, result.err
    assert proxy.injected("reset")
    head = aws.client("s3").head_object(Bucket=BUCKET, Key=f"{PROJECT}/train/input/data/b.txt")
    assert head["ContentLength"] == 9 << 20 and head["ETag"].strip('"').endswith("-2")
    assert_built(demo, aws)


SAGEMAKER = f"""
[project]
name = "{PROJECT}"
backend = "sagemaker"
store = "s3://{BUCKET}"
region = "us-east-1"

[tasks.train]
entry_point = "train.py"
image = {{ uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1" }}
inputs.data = {{ path = "data" }}
spot = false
"""


def test_sagemaker_api_throttling_and_errors_are_retried(
    demo: ProjectDir, aws: AwsEnv, proxy: FaultProxy, sagemaker_emulator: SageMakerEmulator
) -> None:
    demo.ssmfile(SAGEMAKER)
    proxy.add(
        Fault("throttle", method="POST", target="SageMaker.CreateTrainingJob"),
        Fault("throttle", method="POST", target="SageMaker.DescribeTrainingJob"),
        Fault("500", method="POST", target="Logs_20140328.GetLogEvents"),
    )

    result = demo.run()

    assert result.code == 0, result.err
    assert len(proxy.injected("throttle")) == 2 and proxy.injected("500")
    marker = s3_marker(aws)
    assert marker is not None
    assert [r["TrainingJobName"] for r in sagemaker_emulator.requests] == [marker["job"]]


def test_a_download_cut_short_between_parts_says_so(
    demo: ProjectDir, aws: AwsEnv, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert demo.run().code == 0
    demo.write("data/c.txt", "c")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    # The model arrives, the output does not: out/ holds parts of two jobs.
    proxy.add(Fault("500", method="GET", path=r"/output/output\.tar\.gz$", times=1000))

    result = demo.run()

    assert result.code in (1, 2), result.err
    assert (demo.root / "out" / "model" / "model.txt").read_text() == "a.txt,b.txt,c.txt"
    assert downloaded(demo) is None  # no job's download is complete
    proxy.clear()
    assert demo.run().code == 0
    assert_built(demo, aws, seen="a.txt,b.txt,c.txt")


def run_bounded(project: ProjectDir, *args: str) -> Result:
    """`project.run(...)` on a thread, failing the test instead of hanging forever."""
    results: list[Result] = []
    thread = threading.Thread(target=lambda: results.append(project.run(*args)), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert results, "the build is stuck (waiting for a claim that nobody holds?)"
    return results[0]


def test_a_claim_that_could_not_be_released_neither_hides_the_error_nor_blocks(
    demo: ProjectDir, aws: AwsEnv, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    proxy.add(
        Fault("503", method="PUT", path=STEPS["marker write"][1], times=1000),
        Fault("503", method="DELETE", path=STEPS["claim"][1], times=1000),
    )

    result = demo.run()

    assert result.code == 1, result.err
    assert "FAILED: cannot write s3://faulty/demo/train/ssmake.json" in result.err
    assert "could not remove the in-flight record" in result.err
    assert s3_marker(aws) is None
    assert f"{PROJECT}/train/inflight.json" in s3_keys(aws)
    proxy.clear()
    # This very process left the record: later builds in it (the API, `watch`)
    # must not wait for it.
    restored = run_bounded(demo)
    assert restored.code == 0, restored.err
    assert "restored from an earlier run" in restored.err  # the job had completed
    demo.write("data/c.txt", "c")
    rebuilt = run_bounded(demo)
    assert rebuilt.code == 0, rebuilt.err
    assert "taking over from job" in rebuilt.err
    assert not any(k.endswith("inflight.json") for k in s3_keys(aws))
