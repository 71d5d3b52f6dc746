"""The quick answer to `ssmake --check`: when the snapshot of the last plan in which
every task was up to date still holds, the answer is "up to date" without loading
the project, its store or its hash cache.

The snapshot (`.ssmake/cache/check.json`) is written by a plan of the default
targets in which every task's verdict came with a settled stat digest, for a
project loaded from an Ssmfile whose markers and outputs are local files. It names
the Ssmfile (with the sha256 of its text), the paths that never count, and for each
task: what its stat digest walked, its components without files, the digest, its
marker's path and sha256, and its outputs' paths with their recorded ETags (a
local store's `<mtime_ns>-<size>`). Answering repeats the stat digest's
computation on today's files; anything that differs (or cannot be read) means
"not sure", and the normal plan runs and decides.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

from ssmake.plan.docker_context import context_files
from ssmake.plan.ignore import IgnoreMatcher, walk_path
from ssmake.plan.shipped import walk_input
from ssmake.plan.statdigest import StatDigest, marker_hash, walk_record

TYPE_CHECKING = False  # not typing's: importing it would cost this module's every run
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ssmake.plan.statdigest import Walk, WalkRecord

VERSION = 2
SNAPSHOT = "check.json"
WATCH_SOCKET = "watch.sock"
WATCH_TIMEOUT = 2.0  # seconds for a running `ssmake watch` to answer
SSMFILE = "Ssmfile.toml"
# Below this many files a second process costs more than it saves.
FORK_MIN_FILES = 4000


def snapshot_path(root: str) -> str:
    """Where a project's snapshot lives: beside its stat digests in the work directory."""
    return os.path.join(root, ".ssmake", "cache", SNAPSHOT)


def text_sha256(raw: bytes) -> str:
    """The sha256 the loader records for an Ssmfile's bytes: of its text as read (UTF-8,
    BOM dropped, universal newlines)."""
    text = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(text.encode()).hexdigest()


def up_to_date(directory: str) -> bool:
    """Whether the snapshot of the project at `directory` (or the nearest directory
    above it with an Ssmfile.toml) holds: every task of the default targets is up to
    date. False means only "not known here"."""
    root = _project_root(os.path.realpath(directory))
    if root is None:
        return False
    if ask_watcher(root):
        return True
    try:
        with open(snapshot_path(root), "rb") as f:
            doc = json.loads(f.read())
        return _holds(root, doc)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # no snapshot, or one this code cannot read: the normal plan decides


def ask_watcher(root: str) -> bool | None:
    """What a `ssmake watch` running in the project says (build/watch_answer.py):
    True for "up to date", False for "unsure", None when no watcher answers."""
    path = os.path.join(root, ".ssmake", WATCH_SOCKET)
    if not os.path.exists(path):
        return None
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(WATCH_TIMEOUT)
            unix_address(path, sock.connect)
            sock.sendall(b"check\n")
            reply = sock.recv(64)
    except OSError:
        return None
    return reply == b"up-to-date\n"


def unix_address(path: str, use: Callable[[str], None]) -> None:
    """Bind or connect (`use`) a Unix socket at `path`, also when the path is longer
    than a socket address may be: then through /proc/self/fd and its directory."""
    if len(os.fsencode(path)) < 100:
        use(path)
        return
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        use(f"/proc/self/fd/{fd}/{os.path.basename(path)}")
    finally:
        os.close(fd)


def _project_root(start: str) -> str | None:
    """The nearest of `start` and its parents with an Ssmfile.toml, as the command
    line finds it."""
    directory = start
    while True:
        if os.path.isfile(os.path.join(directory, SSMFILE)):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _holds(root: str, doc: dict[str, Any]) -> bool:
    ssmfile = os.path.join(root, SSMFILE)
    if doc["version"] != VERSION or doc["root"] != root or doc["ssmfile"] != ssmfile:
        return False
    with open(ssmfile, "rb") as f:
        if text_sha256(f.read()) != doc["ssmfile_sha256"]:
            return False
    matcher = IgnoreMatcher(Path(root), frozenset(doc["exclude"]))
    tasks: list[dict[str, Any]] = doc["tasks"]
    files = sum(int(t["files"]) for t in tasks)
    if len(tasks) < 2 or files < FORK_MIN_FILES or (os.cpu_count() or 1) < 2:
        return _tasks_hold(tasks, matcher)
    mine, theirs = _halves(tasks)
    # Half the stats in a forked process, as git's preload-index does with threads
    # (Python threads measured slower: the per-file work holds the GIL).
    pid = os.fork()
    if pid == 0:
        held = False
        try:
            held = _tasks_hold(theirs, matcher)
        finally:
            os._exit(0 if held else 1)
    held = False
    try:
        held = _tasks_hold(mine, matcher)
    finally:
        if not held:
            os.kill(pid, signal.SIGKILL)
        _pid, status = os.waitpid(pid, 0)
    return held and os.waitstatus_to_exitcode(status) == 0


def _halves(tasks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two lists of tasks with about as many files each (largest first, to the lighter)."""
    halves: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    weights = [0, 0]
    for task in sorted(tasks, key=lambda t: -int(t["files"])):
        lighter = 0 if weights[0] <= weights[1] else 1
        halves[lighter].append(task)
        weights[lighter] += int(task["files"])
    return halves


def _tasks_hold(tasks: list[dict[str, Any]], matcher: IgnoreMatcher) -> bool:
    # Each walk's record, not its entries: at 100,000 files the stat results alone
    # would be most of the process's memory.
    walked: dict[Walk, WalkRecord] = {}
    for task in tasks:
        walks = []
        for kind, path, exclude in task["walks"]:
            walk: Walk = (kind, path, tuple(exclude))
            record = walked.get(walk)
            if record is None:
                if kind == "tree":
                    entries = walk_path(Path(path), matcher)
                elif kind == "data":
                    entries = walk_input(Path(path), exclude, None)
                else:
                    entries = context_files(Path(path), frozenset(exclude))
                record = walked[walk] = walk_record(walk, entries)
                del entries
            walks.append((walk, record))
        if StatDigest(task["skeleton"].encode(), walks).value != task["stat"]:
            return False
        with open(task["marker"], "rb") as f:
            if marker_hash(f.read()) != task["marker_sha256"]:
                return False
        for path, etag in task["outputs"]:
            st = os.stat(path)
            if f"{st.st_mtime_ns}-{st.st_size}" != etag:
                return False
    return True
