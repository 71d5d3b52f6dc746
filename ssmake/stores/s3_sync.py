"""Making an S3 prefix hold exactly a task's input files, as its snapshot saw them.

A file is skipped only when the stored copy has the snapshot's content: its
sha256, as recorded in the prefix's manifest, or, when there is no manifest,
an S3 ETag equal to the one of the bytes just read and verified. Every file
that is sent is read and verified against the snapshot first (small ones are
sent from those very bytes; for a large one, its identity on disk must not
change until the upload ends), so a file edited while staging stops the sync
with ChangedWhileStaging instead of shipping unfingerprinted content.

A synced prefix is ssmake's own (`<project>/<task>/input/<name>/`), so after a
complete sync a manifest of what is there (size, ETag, sha256) is written
beside it, and the next sync reads that one object instead of listing
thousands (as DVC trusts its `.dir` objects). The manifest is deleted before
the first change, so a sync cut short leaves none and the next one lists. Keys
changed under the prefix by other tools go unnoticed while the manifest
exists; `ssmake clean` removes both.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssmake.errors import KeyNotFound, StoreError
from ssmake.plan.hashcache import identity
from ssmake.plan.snapshot import ChangedWhileStaging, FileEntry, VerifiedReader
from ssmake.stores import ProgressFn, SyncStats
from ssmake.stores.s3_etags import ETagger

if TYPE_CHECKING:
    from ssmake.stores.s3 import S3Store

# Beside a synced prefix `p/`, the key `p.ssmake-sync.json` (outside the prefix, so
# not part of a job's channel) records what the last complete sync left there.
MANIFEST_SUFFIX = ".ssmake-sync.json"
MANIFEST_VERSION = 2


def sync_prefix(
    store: S3Store, prefix: str, files: Mapping[str, FileEntry], on_progress: ProgressFn | None
) -> SyncStats:
    """Upload the files whose content the remote copies do not have, in parallel,
    then delete remote keys under `prefix` that are not in `files`."""
    for rel, entry in files.items():
        try:
            rel.encode()
        except UnicodeEncodeError:
            raise StoreError(
                f"cannot upload {entry.shown!r}: its name is not valid UTF-8, which S3 keys "
                "must be; rename it"
            ) from None
    manifest_key = prefix.rstrip("/") + MANIFEST_SUFFIX if prefix.strip("/") else None
    recorded = _read_manifest(store, manifest_key) if manifest_key else None
    trusted = recorded is not None
    remote: dict[str, list[Any]] = recorded if recorded is not None else {}
    if recorded is None:
        remote = {o.key[len(prefix) :]: [o.size, o.etag, None] for o in store.list(prefix)}
    stats = SyncStats()
    lock = threading.Lock()
    report = on_progress or store.on_progress
    synced: dict[str, list[Any]] = {}
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

    def sync_one(rel: str, entry: FileEntry) -> None:
        old = remote.get(rel)
        if old is not None and old[0] == entry.size and old[2] == entry.sha256:
            with lock:
                synced[rel] = old
                stats.unchanged += 1
            return
        with VerifiedReader(entry) as reader:
            before = identity(os.fstat(reader.fileno()))
            md5 = ETagger(store.sizes, entry.size)
            small = entry.size < store.sizes.threshold
            body = bytearray() if small else None
            while chunk := reader.read(1 << 20):
                md5.update(chunk)
                if body is not None:
                    body.extend(chunk)
            reader.finish()
        etag = md5.hexdigest()
        with lock:
            synced[rel] = [entry.size, etag, entry.sha256]
        if old is not None and old[0] == entry.size and old[1] == etag:
            with lock:
                stats.unchanged += 1
            return
        invalidate()
        if body is not None:
            store.upload_bytes(prefix + rel, bytes(body), progress)
        else:
            store.upload(prefix + rel, Path(entry.path), entry.size, progress)
            try:
                after = identity(os.stat(entry.path))
            except OSError:
                after = None
            if after != before:
                raise ChangedWhileStaging(entry)
        with lock:
            stats.uploaded += 1
            stats.uploaded_bytes += entry.size

    with ThreadPoolExecutor(store.workers, thread_name_prefix="s3sync") as pool:
        futures = [pool.submit(sync_one, rel, entry) for rel, entry in sorted(files.items())]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                pool.shutdown(cancel_futures=True)
                future.result()
    stale = sorted(rel for rel in remote if rel not in files)
    if stale:
        invalidate()
    store.delete_keys([prefix + rel for rel in stale])
    stats.deleted = len(stale)
    if manifest_key and (invalidated or not trusted):
        doc = {"version": MANIFEST_VERSION, "files": dict(sorted(synced.items()))}
        store.put(manifest_key, json.dumps(doc, separators=(",", ":")).encode())
    return stats


def _read_manifest(store: S3Store, key: str) -> dict[str, list[Any]] | None:
    try:
        doc = json.loads(store.get(key))
        if doc["version"] != MANIFEST_VERSION:
            return None
        return {
            str(rel): [int(size), str(etag), str(sha)]
            for rel, (size, etag, sha) in doc["files"].items()
        }
    except KeyNotFound:
        return None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None  # not ours, or damaged: list instead
