"""`ssmake watch` answers `ssmake --check` from what it knows, over a Unix socket at
`.ssmake/watch.sock`: the file-system monitor that git's fsmonitor is for `git
status`. The answer is "up-to-date" only when all of this holds, else "unsure"
(and the asking command plans as usual):

- a cookie file created in `.ssmake/cookies/` came back through the watch, and
  then no save reached the watcher for a short quiet period: watchdog reads every
  watch from one inotify queue, in order, so the saves made before the question
  were read before the cookie, and the quiet period lets its threads hand them on;
- no build runs or waits, and the Ssmfile is valid;
- every task of the default targets ended its last build up to date, done or
  restored, and no save that could change it came after that build started;
- each such task's marker is byte for byte the one that build left, and its
  outputs exist (so a `ssmake clean` or a run from another shell is seen). Stores
  on S3 are never vouched for.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ssmake.plan import layout, quick
from ssmake.project.graph import downstream, select

if TYPE_CHECKING:
    from ssmake.build.engine import BuildResult
    from ssmake.build.session import Session
    from ssmake.plan.watch_scope import Scope
    from ssmake.project.model import Project

COOKIE_WAIT = 1.0  # seconds for a cookie to come back before the answer is "unsure"
QUIET = 0.02  # seconds without a save after the cookie
_OK = ("up-to-date", "done", "restored")


class _Known:
    """A task's marker as its last clean build left it, and its outputs."""

    __slots__ = ("marker", "outputs", "sha")

    def __init__(self, marker: str, sha: str, outputs: list[str]) -> None:
        self.marker = marker
        self.sha = sha
        self.outputs = outputs

    def holds(self) -> bool:
        try:
            with open(self.marker, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != self.sha:
                    return False
        except OSError:
            return False
        return all(os.path.isfile(p) for p in self.outputs)


class WatchAnswers:
    """What the watcher knows to be up to date, and the socket that says so."""

    def __init__(self, root: Path) -> None:
        self.socket_path = root / ".ssmake" / quick.WATCH_SOCKET
        self.cookie_dir = root / ".ssmake" / "cookies"
        self._lock = threading.Lock()
        self._generation = 0  # one more for every save that matters
        self._dirtied: dict[str, int] = {}  # task -> generation of its last save
        self._all_dirtied = 0  # generation of the last save that concerns every task
        self._last_save = 0.0
        self._launched: dict[int, int] = {}  # build number -> generation at launch
        self._known: dict[str, _Known] = {}
        self._cookies: dict[str, threading.Event] = {}
        self._server: socket.socket | None = None
        self._ready: Callable[[], Project | None] = lambda: None

    # -- from the watcher ---------------------------------------------------------

    def watch_plan(self) -> dict[Path, bool]:
        """The cookie directory, to watch beside what the scope plans."""
        return {self.cookie_dir: False} if self._server is not None else {}

    def cookie(self, path: Path) -> bool:
        """Whether a save is one of the cookies (then it is nothing else)."""
        if path.parent != self.cookie_dir:
            return False
        with self._lock:
            came = self._cookies.get(path.name)
        if came is not None:
            came.set()
        return True

    def saw(self, scope: Scope, project: Project | None, path: Path, everything: bool) -> None:
        """A save that matters: the tasks it can change are no longer vouched for."""
        tasks: set[str] | None = None
        if not everything and project is not None and not scope.replans_all(path):
            tasks = set(scope.affected([path]))
            for name in list(tasks):
                tasks |= downstream(project, name)
        with self._lock:
            self._generation += 1
            self._last_save = time.monotonic()
            if tasks is None:
                self._all_dirtied = self._generation
                self._known.clear()
            for name in tasks or ():
                self._dirtied[name] = self._generation
                self._known.pop(name, None)

    def launched(self, number: int) -> None:
        with self._lock:
            self._launched[number] = self._generation

    def record(self, number: int, session: Session, result: BuildResult | None) -> None:
        """After a build: vouch for its tasks that ended well and saw no save since
        it started; forget the others."""
        project = session.project
        known: dict[str, _Known] = {}
        for outcome in result.outcomes if result is not None else ():
            if outcome.status in _OK:
                entry = _known(session, project, outcome.task)
                if entry is not None:
                    known[outcome.task] = entry
        with self._lock:
            started = self._launched.pop(number, self._generation)
            for outcome in result.outcomes if result is not None else ():
                name = outcome.task
                clean = self._all_dirtied <= started and self._dirtied.get(name, 0) <= started
                if clean and name in known:
                    self._known[name] = known[name]
                else:
                    self._known.pop(name, None)

    # -- the socket ---------------------------------------------------------------

    def start(self, ready: Callable[[], Project | None]) -> None:
        """Answer on the socket; `ready()` is the project while the watcher is idle
        with a valid Ssmfile, else None. No socket when another watcher answers."""
        self._ready = ready
        if quick.ask_watcher(str(self.socket_path.parent.parent)) is not None:
            return  # another watch of this project answers
        self.cookie_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            quick.unix_address(str(self.socket_path), server.bind)
            server.listen(8)
        except OSError:
            server.close()
            return  # no socket: every --check plans as usual
        self._server = server
        threading.Thread(target=self._serve, name="watch-answers", daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            self.socket_path.unlink(missing_ok=True)

    def _serve(self) -> None:
        while (server := self._server) is not None:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed by stop()
            with conn:
                try:
                    conn.settimeout(COOKIE_WAIT)
                    if conn.recv(64).strip() == b"check":
                        conn.sendall(b"up-to-date\n" if self.up_to_date() else b"unsure\n")
                except OSError:
                    continue

    def up_to_date(self) -> bool:
        """Whether every task of the default targets is known to be up to date."""
        if not self._sync():
            return False
        with self._lock:
            before = self._generation
        project = self._ready()
        if project is None:
            return False
        names = select(project, [])
        with self._lock:
            known = [self._known.get(name) for name in names]
        if not all(k is not None and k.holds() for k in known):
            return False
        with self._lock:
            return self._generation == before

    def _sync(self) -> bool:
        """Send a cookie through the watch, then wait for a quiet moment."""
        name = f"{uuid.uuid4().hex}.cookie"
        came = threading.Event()
        with self._lock:
            self._cookies[name] = came
        path = self.cookie_dir / name
        try:
            path.write_bytes(b"")
            if not came.wait(COOKIE_WAIT):
                return False
            deadline = time.monotonic() + COOKIE_WAIT
            while time.monotonic() < deadline:
                with self._lock:
                    quiet_for = time.monotonic() - self._last_save
                if quiet_for >= QUIET:
                    return True
                time.sleep(QUIET - quiet_for)
            return False
        except OSError:
            return False
        finally:
            with self._lock:
                self._cookies.pop(name, None)
            path.unlink(missing_ok=True)


def _known(session: Session, project: Project, task: str) -> _Known | None:
    """The task's marker and outputs as local files, or None (on S3, or unreadable)."""
    uri = session.store.uri(layout.marker_key(project.name, task))
    if not uri.startswith("file://"):
        return None
    path = uri.removeprefix("file://")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        outputs = json.loads(raw).get("outputs") or {}
        uris = [session.store.uri(o["key"]) for o in outputs.values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not all(u.startswith("file://") for u in uris):
        return None
    return _Known(path, hashlib.sha256(raw).hexdigest(), [u.removeprefix("file://") for u in uris])
