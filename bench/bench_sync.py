"""Input sync against a moto server: ssmake's S3Store.sync_dir versus `aws s3 sync`.

    python bench/bench_sync.py [--small N] [--large N] [--large-mib N] [--runs N] [--quick]

Generates a tree in a temporary directory (N small files of 1-16 KiB, N large
files of random bytes), starts a moto server in a subprocess on 127.0.0.1, and
times three syncs with each tool, in separate buckets: the first (everything is
uploaded), a second with no change, and a third after one large file changed
and one small file was deleted (the last two repeated --runs times: medians).
Each ssmake sync runs in a fresh process, as `ssmake` would, with its ETag cache
file kept between runs; "in-process" is the sync call alone. Needs
moto[server]; `aws s3 sync` is skipped when awscli is not installed
(`pip install awscli`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHASES = ("first sync", "no change", "1 changed, 1 deleted")


def child_sync(args: argparse.Namespace) -> None:
    """One ssmake sync, in this (fresh) process; prints its stats as JSON."""
    started = time.perf_counter()
    sys.path.insert(0, str(REPO))
    from ssmake.plan.hashcache import HashCache
    from ssmake.plan.snapshot import FileEntry, is_executable
    from ssmake.stores.s3 import S3Store

    root = Path(args.child)
    paths = [p for p in sorted(root.rglob("*")) if p.is_file()]
    stats_of = [p.stat() for p in paths]
    # What planning does first: the snapshot, through the hash cache.
    cache = HashCache(Path(args.etag_cache))
    digests = cache.hash_files(list(zip(paths, stats_of, strict=True)))
    cache.save()
    files = {
        p.relative_to(root).as_posix(): FileEntry(str(p), str(p), st.st_size, d, is_executable(st))
        for p, st, d in zip(paths, stats_of, digests, strict=True)
    }
    store = S3Store(args.bucket)
    assert store.client is not None  # boto3's import and set-up count in the process time
    sync_started = time.perf_counter()
    stats = store.sync_dir("input/", files)
    done = time.perf_counter()
    doc = {
        "uploaded": stats.uploaded,
        "uploaded_bytes": stats.uploaded_bytes,
        "deleted": stats.deleted,
        "unchanged": stats.unchanged,
        "sync_seconds": done - sync_started,
        "child_seconds": done - started,
    }
    print(json.dumps(doc))


def make_tree(root: Path, small: int, large: int, large_mib: int) -> None:
    rng = random.Random(5)
    for i in range(small):
        path = root / f"small/{i % 20:02d}/{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1024, 16 * 1024)))
    for i in range(large):
        path = root / f"large/{i:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            for _ in range(large_mib):
                f.write(os.urandom(1 << 20))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return server, endpoint
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("the moto server did not start") from None
            time.sleep(0.1)


def run_ssmake(tree: Path, bucket: str, cache: Path, env: dict[str, str]) -> dict[str, float]:
    started = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            str(tree),
            "--bucket",
            bucket,
            "--etag-cache",
            str(cache),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    doc: dict[str, float] = json.loads(out)
    doc["seconds"] = time.perf_counter() - started
    return doc


def run_awscli(aws: str, tree: Path, bucket: str, endpoint: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            aws,
            "s3",
            "sync",
            str(tree),
            f"s3://{bucket}/input/",
            "--delete",
            "--only-show-errors",
            "--endpoint-url",
            endpoint,
        ],
        env=env,
        check=True,
    )
    return time.perf_counter() - started


def change_tree(tree: Path, run: int) -> None:
    """Rewrite 4 KiB of one large file and delete one small file (others each run)."""
    big = sorted((tree / "large").glob("*.bin"))
    if big:
        with big[run % len(big)].open("r+b") as f:
            f.seek(1000)
            f.write(os.urandom(4096))
    victims = sorted((tree / "small").rglob("*.txt"))
    if victims:
        victims[-1].unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000, help="small files (default 2000)")
    parser.add_argument("--large", type=int, default=20, help="large files (default 20)")
    parser.add_argument("--large-mib", type=int, default=20, help="MiB per large file (20)")
    parser.add_argument(
        "--runs", type=int, default=5, help="runs of the 2nd and 3rd phase; medians (5)"
    )
    parser.add_argument("--quick", action="store_true", help="a small tree, for a smoke test")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--etag-cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_sync(args)
        return
    if args.quick:
        args.small, args.large, args.large_mib, args.runs = 200, 2, 9, 1

    import boto3

    aws = shutil.which("aws")
    server, endpoint = start_moto()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
    )
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket="bench-ssmake")
        s3.create_bucket(Bucket="bench-awscli")
        with tempfile.TemporaryDirectory(prefix="ssmake-bench-") as tmp_name:
            tmp = Path(tmp_name)
            tree = tmp / "tree"
            make_tree(tree, args.small, args.large, args.large_mib)
            total = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
            # Input data is rarely written in the 2 s before a sync; inside that
            # window the ETag cache does not trust a file's mtime (see hashcache).
            time.sleep(2.1)
            print(
                f"tree: {args.small} small files + {args.large} x {args.large_mib} MiB "
                f"= {total / (1 << 20):.0f} MiB; moto at {endpoint}"
            )
            rows = []
            for phase in PHASES:
                ours_runs: list[dict[str, float]] = []
                theirs_runs: list[float] = []
                for i in range(1 if phase == PHASES[0] else args.runs):
                    if phase == PHASES[2]:
                        change_tree(tree, i)
                    ours_runs.append(run_ssmake(tree, "bench-ssmake", tmp / "etags.json", env))
                    if aws:
                        theirs_runs.append(run_awscli(aws, tree, "bench-awscli", endpoint, env))
                ours = {k: statistics.median(r[k] for r in ours_runs) for k in ours_runs[0]}
                theirs = statistics.median(theirs_runs) if theirs_runs else None
                rows.append((phase, ours, theirs))
            ours_keys = {(o["Key"], o["Size"]) for o in _listing(s3, "bench-ssmake")}
            theirs_keys = {(o["Key"], o["Size"]) for o in _listing(s3, "bench-awscli")}
            if aws and ours_keys != theirs_keys:
                raise SystemExit("the two tools left different trees in S3")
    finally:
        server.terminate()
        server.wait(timeout=10)
    print_table(rows, aws is not None)


def _listing(s3: object, bucket: str) -> list[dict[str, object]]:
    pages = s3.get_paginator("list_objects_v2").paginate(  # type: ignore[attr-defined]
        Bucket=bucket, Prefix="input/"
    )
    return [o for page in pages for o in page.get("Contents", [])]


def print_table(rows: list[tuple[str, dict[str, float], float | None]], awscli: bool) -> None:
    header = (
        f"| {'phase':<22} | {'uploaded':>20} | {'ssmake':>8} | {'in-process':>10} "
        f"| {'aws s3 sync':>11} | {'ratio':>6} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for phase, ours, theirs in rows:
        uploaded = f"{ours['uploaded']:.0f} / {ours['uploaded_bytes'] / (1 << 20):.1f} MiB"
        if ours["deleted"]:
            uploaded += f", {ours['deleted']:.0f} del"
        aws_col = f"{theirs:.2f} s" if theirs is not None else "n/a"
        ratio = f"{theirs / ours['seconds']:.1f}x" if theirs is not None else "n/a"
        print(
            f"| {phase:<22} | {uploaded:>20} | {ours['seconds']:>6.2f} s "
            f"| {ours['sync_seconds']:>8.2f} s | {aws_col:>11} | {ratio:>6} |"
        )
    if not awscli:
        print("awscli is not installed: pip install awscli to compare with `aws s3 sync`")
    print("ratio = aws s3 sync time / ssmake time (higher is better for ssmake)")


if __name__ == "__main__":
    main()
