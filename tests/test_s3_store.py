"""S3Store against a moto server: the Store contract, directory sync, ETags, errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ssmake import aws as ssmake_aws
from ssmake.errors import EXIT_USAGE, KeyNotFound, StoreError
from ssmake.plan.snapshot import ChangedWhileStaging, FileEntry, is_executable
from ssmake.stores import open_store, store_for_uri
from ssmake.stores.local import LocalStore
from ssmake.stores.s3 import S3Store
from ssmake.stores.s3_etags import MIB, TransferSizes, s3_etag

if TYPE_CHECKING:
    from aws_fixtures import AwsEnv
    from conftest import ProjectDir


@pytest.fixture
def bucket(aws: AwsEnv) -> str:
    aws.client("s3").create_bucket(Bucket="bkt")
    return "bkt"


def write_tree(root: Path, files: dict[str, bytes]) -> dict[str, Path]:
    out = {}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[rel] = path
    return out


def test_addresses() -> None:
    store = S3Store.from_url("s3://bkt/team/cache/")
    assert (store.bucket, store.prefix) == ("bkt", "team/cache/")
    assert store.url == "s3://bkt/team/cache"
    assert store.uri("p/t/ssmake.json") == "s3://bkt/team/cache/p/t/ssmake.json"
    assert S3Store("bkt").url == "s3://bkt"
    assert isinstance(open_store("s3://bkt/x", root=Path("/")), S3Store)
    inner, key = store_for_uri("s3://bkt/a/b/model.tar.gz")
    assert isinstance(inner, S3Store) and key == "a/b/model.tar.gz"
    with pytest.raises(StoreError, match="s3://BUCKET"):
        S3Store.from_url("s3:///nobucket")


def test_objects_round_trip(bucket: str, aws: AwsEnv) -> None:
    store = S3Store(bucket, "pre")
    store.put("p/t/ssmake.json", b'{"a": 1}')
    store.put("p/t/state/x", b"state")
    store.put("p/other/x", b"other")
    assert store.get("p/t/ssmake.json") == b'{"a": 1}'
    info = store.info("p/t/state/x")
    assert info is not None and (info.key, info.size) == ("p/t/state/x", 5)
    assert info.etag == hashlib.md5(b"state").hexdigest()
    assert store.exists("p/t/state/x") and not store.exists("p/t/nothing")
    assert store.info("p/t/nothing") is None
    # Keys are relative to the prefix; the bucket holds them below it.
    assert [o.key for o in store.list("p/t/")] == ["p/t/ssmake.json", "p/t/state/x"]
    raw = aws.client("s3").get_object(Bucket=bucket, Key="pre/p/t/state/x")["Body"].read()
    assert raw == b"state"
    with pytest.raises(KeyNotFound, match=r"s3://bkt/pre/p/t/missing does not exist"):
        store.get("p/t/missing")
    store.delete("p/t/ssmake.json")
    assert not store.exists("p/t/ssmake.json")
    assert store.delete_prefix("p/") == 2
    assert list(store.list("")) == []


def test_put_if_absent_is_conditional(bucket: str) -> None:
    store = S3Store(bucket)
    assert store.put_if_absent("p/t/inflight.json", b"first")
    assert not store.put_if_absent("p/t/inflight.json", b"second")
    assert store.get("p/t/inflight.json") == b"first"


def test_list_paginates(bucket: str) -> None:
    store = S3Store(bucket)
    store.page_size = 2
    for i in range(5):
        store.put(f"many/{i}", b"")
    store.put("other", b"")
    assert [o.key for o in store.list("many/")] == [f"many/{i}" for i in range(5)]


def test_names_lists_one_level_as_s3_does(bucket: str, tmp_path: Path) -> None:
    """`names` gives the next segment of the keys below a prefix, on S3 (a delimiter
    listing, paginated) and on a local store alike: a task's job attempts are found
    without listing every file of every job."""
    keys = [
        "p/t/t-abc-1/logs/algo-1.log",
        "p/t/t-abc-1/output/model.tar.gz",
        "p/t/t-abc-2/output/model.tar.gz",
        "p/t/t-abc-10/output/output.tar.gz",
        "p/t/t-abd-3/output/model.tar.gz",
        "p/t/ssmake.json",
        "p/u/t-abc-7/output/model.tar.gz",
    ]
    s3 = S3Store(bucket, "pre")
    s3.page_size = 2
    local = LocalStore(tmp_path / "store")
    for store in (s3, local):
        for key in keys:
            store.put(key, b"x")
    (tmp_path / "store" / "p" / "t" / "t-abc-99").mkdir()  # empty: no key below it
    for store in (s3, local):
        assert store.names("p/t/t-abc-") == {"1", "2", "10"}, store
        assert store.names("p/t/") == {"t-abc-1", "t-abc-2", "t-abc-10", "t-abd-3", "ssmake.json"}
        assert store.names("p/") == {"t", "u"}
        assert store.names("") == {"p"}
        assert store.names("p/t/ssmake") == {".json"}
        assert store.names("p/none/") == set()
        assert store.names("q") == set()


def test_get_file_replaces_atomically(bucket: str, tmp_path: Path) -> None:
    store = S3Store(bucket, sizes=TransferSizes(threshold=5 * MIB, chunk=5 * MIB))
    dest = tmp_path / "out" / "model.tar.gz"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    with pytest.raises(KeyNotFound):
        store.get_file("missing", dest)
    # A failed download leaves the old file and no temporary.
    assert dest.read_bytes() == b"old"
    assert os.listdir(dest.parent) == ["model.tar.gz"]
    store.put("small", b"new bytes")
    store.get_file("small", dest)
    assert dest.read_bytes() == b"new bytes"
    big = tmp_path / "big"
    big.write_bytes(os.urandom(6 * MIB))
    store.put_file("big", big)
    store.get_file("big", tmp_path / "big.copy")
    assert (tmp_path / "big.copy").read_bytes() == big.read_bytes()
    assert sorted(os.listdir(dest.parent)) == ["model.tar.gz"]


def snap(files: dict[str, Path]) -> dict[str, FileEntry]:
    """The snapshot planning would take of `files`."""
    out = {}
    for rel, path in files.items():
        st = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        out[rel] = FileEntry(str(path), rel, st.st_size, digest, is_executable(st))
    return out


def test_sync_uploads_changes_and_deletes(bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "data"
    files = write_tree(local, {f"d/{i}.txt": f"file {i}".encode() for i in range(30)})
    progress: list[int] = []
    store = S3Store(bucket, on_progress=progress.append)
    first = store.sync_dir("p/t/input/data/", snap(files))
    assert (first.uploaded, first.deleted, first.unchanged) == (30, 0, 0)
    assert first.uploaded_bytes == sum(p.stat().st_size for p in files.values())
    assert sum(progress) == first.uploaded_bytes

    # A new process: nothing changed, nothing is uploaded.
    second = S3Store(bucket).sync_dir("p/t/input/data/", snap(files))
    assert (second.uploaded, second.uploaded_bytes, second.unchanged) == (0, 0, 30)

    # Same size, new content: the ETag tells. A deleted file goes remotely too.
    files["d/3.txt"].write_bytes(b"FILE 3")
    files.pop("d/7.txt").unlink()
    third = S3Store(bucket).sync_dir("p/t/input/data/", snap(files))
    assert (third.uploaded, third.uploaded_bytes, third.deleted) == (1, 6, 1)
    assert third.unchanged == 28
    assert store.get("p/t/input/data/d/3.txt") == b"FILE 3"
    assert not store.exists("p/t/input/data/d/7.txt")
    assert len(list(store.list("p/t/input/data/"))) == 29


def test_sync_trusts_its_manifest_and_recovers_without_it(bucket: str, tmp_path: Path) -> None:
    store = S3Store(bucket)
    mine = write_tree(tmp_path / "mine", {"a": b"1", "b": b"22", "c": b"333"})
    store.sync_dir("p/t/input/data/", snap(mine))
    # The manifest sits beside the prefix, outside the job's channel.
    assert store.exists("p/t/input/data.ssmake-sync.json")
    assert [o.key for o in store.list("p/t/input/data/")] == [f"p/t/input/data/{n}" for n in "abc"]

    # Someone else syncs another tree to the same prefix: the result is theirs.
    theirs = write_tree(tmp_path / "theirs", {"a": b"1", "b": b"XX", "d": b"4"})
    stats = S3Store(bucket).sync_dir("p/t/input/data/", snap(theirs))
    assert (stats.uploaded, stats.deleted, stats.unchanged) == (2, 1, 1)
    assert {o.key[-1]: store.get(o.key) for o in store.list("p/t/input/data/")} == {
        "a": b"1",
        "b": b"XX",
        "d": b"4",
    }

    # Without the manifest the sync lists, and writes it again.
    store.delete("p/t/input/data.ssmake-sync.json")
    stats = S3Store(bucket).sync_dir("p/t/input/data/", snap(theirs))
    assert (stats.uploaded, stats.unchanged) == (0, 3)
    assert store.exists("p/t/input/data.ssmake-sync.json")


def test_sync_cut_short_leaves_no_manifest(bucket: str, tmp_path: Path) -> None:
    files = write_tree(tmp_path, {"a": b"1", "b": b"2"})
    store = S3Store(bucket, workers=1)
    store.sync_dir("in/", snap(files))
    files["a"].write_bytes(b"changed")
    files["b"].write_bytes(b"3")
    planned = snap(files)
    files["b"].write_bytes(b"4")  # after the snapshot: it must not be shipped

    with pytest.raises(ChangedWhileStaging, match="changed while it was being staged"):
        store.sync_dir("in/", planned)

    assert store.get("in/a") == b"changed"
    assert store.get("in/b") == b"2"
    assert not store.exists("in.ssmake-sync.json")
    stats = store.sync_dir("in/", snap(files))
    assert (stats.uploaded, stats.unchanged) == (1, 1)
    assert store.get("in/b") == b"4"


def _multipart_etag(data: bytes, chunk: int) -> str:
    parts = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(joined).hexdigest()}-{len(parts)}"


def test_multipart_etag_matches_s3(bucket: str, tmp_path: Path) -> None:
    sizes = TransferSizes(threshold=5 * MIB, chunk=5 * MIB)
    data = os.urandom(12 * MIB + 7)
    files = write_tree(tmp_path / "in", {"big.bin": data, "small.bin": b"x" * 100})
    store = S3Store(bucket, sizes=sizes)
    stats = store.sync_dir("in/", snap(files))
    assert stats.uploaded == 2
    remote = store.info("in/big.bin")
    assert remote is not None
    assert remote.etag == _multipart_etag(data, 5 * MIB)
    assert s3_etag(files["big.bin"], len(data), sizes) == remote.etag
    assert remote.etag.endswith("-3")
    again = S3Store(bucket, sizes=sizes).sync_dir("in/", snap(files))
    assert (again.uploaded, again.unchanged) == (0, 2)


def test_missing_bucket_says_so(aws: AwsEnv) -> None:
    with pytest.raises(StoreError) as caught:
        S3Store("no-such-bucket").put("k", b"x")
    message = str(caught.value)
    assert "s3://no-such-bucket/k" in message
    assert "bucket no-such-bucket does not exist" in message
    assert "aws s3 mb" in message
    assert caught.value.exit_code == EXIT_USAGE


def test_missing_credentials_say_so(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreError) as caught:
        S3Store("bkt").get("p/t/ssmake.json")
    assert "credentials" in str(caught.value)
    assert "aws configure" in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE


def test_profiles_are_honoured(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[team]\naws_access_key_id = t\naws_secret_access_key = t\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "team")
    S3Store(bucket).put("k", b"v")
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    with pytest.raises(StoreError, match="nobody"):
        S3Store(bucket).get("k")


def test_unreachable_endpoint_says_so(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StoreError, match=r"cannot reach http://127\.0\.0\.1:9"):
        S3Store("bkt").get("k")


def test_cli_reports_missing_credentials(
    aws: AwsEnv, project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    project.ssmfile(
        """
        [project]
        name = "demo"
        store = "s3://team-cache"
        [tasks.train]
        entry_point = "train.py"
        """
    )
    project.write("train.py", "print('hi')\n")
    result = project.run()
    assert result.code == EXIT_USAGE
    assert "credentials" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("code", "operation", "expected"),
    [
        ("AccessDenied", "PutObject", "access denied to PutObject"),
        ("SlowDown", "PutObject", "throttling"),
        ("ThrottlingException", "DescribeTrainingJob", "throttling"),
        ("ResourceLimitExceeded", "CreateTrainingJob", "quota"),
        ("ExpiredToken", "GetObject", "expired"),
    ],
)
def test_client_errors_are_explained(code: str, operation: str, expected: str) -> None:
    from botocore.exceptions import ClientError

    error = ClientError({"Error": {"Code": code, "Message": "nope"}}, operation)
    mapped = ssmake_aws.translate(error, "cannot do it", StoreError)
    assert isinstance(mapped, StoreError)
    assert mapped.message.startswith("cannot do it: ")
    assert expected in mapped.message
    assert ssmake_aws.translate(ValueError("bug"), "x") is None


def test_cli_does_not_import_boto3() -> None:
    code = "import sys, ssmake.cli, ssmake.stores.s3; sys.exit('boto3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
