"""Making an S3 prefix hold exactly a directory's files, uploading only what changed.

"Unchanged" is decided the way S3 can check it: equal size and equal ETag (see
`s3_etags`). A synced prefix is ssmake's own (`<project>/<task>/input/<name>/`),
so after a complete sync a manifest of what is there is written beside it, and
the next sync reads that one object instead of listing thousands (as DVC trusts
its `.dir` objects). It records local ETags, so even SSE-KMS objects, whose
ETags are not MD5s, are then recognised as unchanged. The manifest is deleted
before the first change, so a sync cut short leaves none and the next one lists.
Keys changed under the prefix by other tools go unnoticed while the manifest
exists; `ssmake clean` removes both.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

from ssmake.errors import KeyNotFound, StoreError
from ssmake.stores import ProgressFn, SyncStats

if TYPE_CHECKING:
    from ssmake.stores.s3 import S3Store

# Beside a synced prefix `p/`, the key `p.ssmake-sync.json` (outside the prefix, so
# not part of a job's channel) records what the last complete sync left there.
MANIFEST_SUFFIX = ".ssmake-sync.json"
MANIFEST_VERSION = 1


def sync_prefix(
    store: S3Store, prefix: str, files: dict[str, Path], on_progress: ProgressFn | None
) -> SyncStats:
    """Upload the files whose size or ETag differ from the remote ones, in
    parallel, then delete remote keys under `prefix` that are not in `files`."""
    manifest_key = prefix.rstrip("/") + MANIFEST_SUFFIX if prefix.strip("/") else None
    remote = _read_manifest(store, manifest_key) if manifest_key else None
    trusted = remote is not None
    if remote is None:
        remote = {o.key[len(prefix) :]: (o.size, o.etag) for o in store.list(prefix)}
    stats = SyncStats()
    lock = threading.Lock()
    report = on_progress or store.on_progress
    synced: dict[str, tuple[int, str]] = {}
    invalidated = False

    def invalidate() -> None:
        # Before the first change: a sync cut short must leave no manifest.
        nonlocal invalidated
        with lock:
            if trusted and manifest_key and not invalidated:
                store.delete(manifest_key)
            invalidated = True

    def progress(n: int) -> None:
        if report is not None:
            with lock:
                report(n)

    def sync_one(rel: str, path: Path) -> None:
        try:
            st = path.stat()
        except OSError as e:
            raise StoreError(f"cannot read {path} to upload it: {e.strerror}") from None
        # Hashed before uploading too: the file is read once into the page cache,
        # and the next sync of an unchanged tree reads nothing.
        etag = store.etags.etag(path, st)
        with lock:
            synced[rel] = (st.st_size, etag)
        if remote.get(rel) == (st.st_size, etag):
            with lock:
                stats.unchanged += 1
            return
        invalidate()
        store.upload(prefix + rel, path, st.st_size, progress)
        with lock:
            stats.uploaded += 1
            stats.uploaded_bytes += st.st_size

    try:
        with ThreadPoolExecutor(store.workers, thread_name_prefix="s3sync") as pool:
            futures = [pool.submit(sync_one, rel, path) for rel, path in sorted(files.items())]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    pool.shutdown(cancel_futures=True)
                    future.result()
    finally:
        store.etags.save()
    stale = sorted(rel for rel in remote if rel not in files)
    if stale:
        invalidate()
    store.delete_keys([prefix + rel for rel in stale])
    stats.deleted = len(stale)
    if manifest_key and (invalidated or not trusted):
        doc = {"version": MANIFEST_VERSION, "files": dict(sorted(synced.items()))}
        store.put(manifest_key, json.dumps(doc, separators=(",", ":")).encode())
    return stats


def _read_manifest(store: S3Store, key: str) -> dict[str, tuple[int, str]] | None:
    try:
        doc = json.loads(store.get(key))
        if doc["version"] != MANIFEST_VERSION:
            return None
        return {str(rel): (int(size), str(etag)) for rel, (size, etag) in doc["files"].items()}
    except KeyNotFound:
        return None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None  # not ours, or damaged: list instead
