"""Property: what a job received is what its marker claims, whatever the edits.

A stateful test over a 3-task project sharing an input directory and a
dependency. Rules edit, touch, revert, chmod, edit keeping the old mtime, add
and remove files, edit the Ssmfile, build, and edit while ssmake stages a task
(through the runner's staging hook, so between planning and packing, or between
two tasks of one build). The worker records the sha256 and executable bit of
every file it received. After every build, a fresh plan is taken and, for every
task it calls up to date, the files the job saw equal the files its marker
claims, which equal the files on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ssmake.build import staging as runner
from ssmake.cli import main

# Records what the job received: code and channels, by content and exec bit.
WORKER = """\
import hashlib, json, os
from pathlib import Path

def tree(top):
    out = {}
    for p in sorted(Path(top).rglob("*")):
        if p.is_file():
            rel = p.relative_to(top).as_posix()
            if not rel.startswith("worker_toolkit/"):
                out[rel] = [hashlib.sha256(p.read_bytes()).hexdigest(), os.access(p, os.X_OK)]
    return out

channels = json.loads(os.environ["SM_CHANNELS"])
seen = {
    "code": tree(os.environ["SM_MODULE_DIR"]),
    "inputs": {c: tree(os.environ["SM_CHANNEL_" + c.upper()]) for c in channels},
}
Path(os.environ["SM_MODEL_DIR"], "seen.json").write_text(json.dumps(seen, sort_keys=True))
"""

TASKS = ("t1", "t2", "t3")
# Files the rules edit (never the entry points): code, the dependency, the input.
FILES = (
    "t1/aux.txt",
    "t2/aux.txt",
    "t3/aux.py",
    "lib/util.py",
    "shared/a.csv",
    "shared/sub/b.bin",
    "shared/4913",
    "shared/notes.log",
)
CONTENTS = st.sampled_from([b"", b"one", b"two", b"three!", b"x" * 40])


def ssmfile(lr: dict[str, int]) -> str:
    return f"""
[project]
name = "snap"

[tasks.t1]
source_dir = "t1"
entry_point = "main.py"
dependencies = ["lib"]
inputs.shared = {{ path = "shared" }}
hyperparameters = {{ lr = {lr["t1"]} }}

[tasks.t2]
source_dir = "t2"
entry_point = "main.py"
inputs.shared = {{ path = "shared" }}
inputs.up = {{ task = "t1", output = "model" }}
hyperparameters = {{ lr = {lr["t2"]} }}

[tasks.t3]
source_dir = "t3"
entry_point = "main.py"
dependencies = ["lib"]
hyperparameters = {{ lr = {lr["t3"]} }}
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def disk_tree(top: Path, prefix: str = "") -> dict[str, list[Any]]:
    return {
        prefix + p.relative_to(top).as_posix(): [sha(p), os.access(p, os.X_OK)]
        for p in sorted(top.rglob("*"))
        if p.is_file()
    }


class SnapshotMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="ssmake-snap-"))
        self.lr = dict.fromkeys(TASKS, 1)
        self.history: dict[str, list[bytes]] = {}
        (self.root / ".gitignore").write_text("*.log\n4913\n")  # data is not code
        for task in TASKS:
            self.write(f"{task}/main.py", WORKER.encode())
        for rel in FILES:
            self.write(rel, b"zero")
        self.write_ssmfile()

    def teardown(self) -> None:
        runner.STAGING_HOOKS.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers -------------------------------------------------------------

    def write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.history.setdefault(rel, []).append(data)

    def write_ssmfile(self) -> None:
        (self.root / "Ssmfile.toml").write_text(ssmfile(self.lr))

    def ssmake(self, *args: str) -> tuple[int, str]:
        err = io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            code = main([*args, "-C", str(self.root)])
        return code, err.getvalue()

    def claims(self, marker: dict[str, Any]) -> dict[str, Any]:
        code = marker["components"]["code"]
        executable = set(code["executable"])
        inputs = {
            name: {rel: [d, False] for rel, d in entry["files"].items()}
            for name, entry in marker["components"]["inputs"].items()
            if entry["kind"] == "path"
        }
        return {
            "code": {n: [d, n in executable] for n, d in code["files"].items()},
            "inputs": inputs,
        }

    def seen(self, marker: dict[str, Any]) -> dict[str, Any]:
        model = self.root / ".ssmake" / marker["outputs"]["model"]["key"]
        with tarfile.open(model) as tar:
            member = tar.extractfile("seen.json")
            assert member is not None
            seen: dict[str, Any] = json.loads(member.read())
        # Channels carry no mode: compare their content only.
        for files in seen["inputs"].values():
            for entry in files.values():
                entry[1] = False
        # The up channel is the upstream's model, fingerprinted by content elsewhere.
        seen["inputs"].pop("up", None)
        return seen

    def on_disk(self, task: str) -> dict[str, Any]:
        code = disk_tree(self.root / task)
        if task != "t2":
            code.update(disk_tree(self.root / "lib", "lib/"))
        inputs = {}
        if task != "t3":
            inputs["shared"] = {
                k: [v[0], False] for k, v in disk_tree(self.root / "shared").items()
            }
        return {"code": code, "inputs": inputs}

    # -- rules ---------------------------------------------------------------

    @rule(rel=st.sampled_from(FILES), data=CONTENTS)
    def edit(self, rel: str, data: bytes) -> None:
        self.write(rel, data)

    @rule(rel=st.sampled_from(FILES))
    def touch(self, rel: str) -> None:
        path = self.root / rel
        if path.exists():
            os.utime(path)

    @rule(rel=st.sampled_from(FILES), back=st.integers(1, 3))
    def revert(self, rel: str, back: int) -> None:
        versions = self.history.get(rel, [])
        if len(versions) > back:
            self.write(rel, versions[-1 - back])

    @rule(rel=st.sampled_from(FILES))
    def chmod(self, rel: str) -> None:
        path = self.root / rel
        if path.exists():
            path.chmod(path.stat().st_mode ^ 0o111)

    @rule(rel=st.sampled_from(FILES), data=CONTENTS)
    def edit_keeping_mtime(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        if path.exists():
            before = path.stat()
            self.write(rel, data)
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    @rule(rel=st.sampled_from(FILES))
    def remove(self, rel: str) -> None:
        path = self.root / rel
        siblings = [p for p in path.parent.iterdir() if p.is_file()] if path.exists() else []
        if len(siblings) > 1:  # an input never becomes empty
            path.unlink()

    @rule(task=st.sampled_from(TASKS), lr=st.integers(1, 3))
    def edit_ssmfile(self, task: str, lr: int) -> None:
        self.lr[task] = lr
        self.write_ssmfile()

    @rule()
    def build(self) -> None:
        code, err = self.ssmake("run")
        assert code == 0, err

    @rule(
        when=st.sampled_from(TASKS),
        rel=st.sampled_from(FILES),
        data=CONTENTS,
        undo=st.booleans(),
    )
    def edit_while_staging(self, when: str, rel: str, data: bytes, undo: bool) -> None:
        """Save a file while ssmake stages `when` (maybe undoing the save once the
        build is over, so that the files on disk are again those it planned with)."""
        path = self.root / rel
        before = path.read_bytes() if path.exists() else None
        fired = []

        def hook(task: str) -> None:
            if task == when and not fired:
                fired.append(task)
                self.write(rel, data)

        runner.STAGING_HOOKS.append(hook)
        try:
            code, err = self.ssmake("run")
        finally:
            runner.STAGING_HOOKS.remove(hook)
        assert code == 0 or "changed while it was being staged" in err, err
        if undo and fired and before is not None:
            self.write(rel, before)

    # -- the invariant -------------------------------------------------------

    @precondition(lambda self: (self.root / ".ssmake").exists())
    @invariant()
    def up_to_date_tasks_received_what_their_markers_claim(self) -> None:
        from ssmake.build.session import open_session
        from ssmake.project.load import load_project

        session = open_session(load_project(self.root))
        try:
            plans = session.planner.plan(list(TASKS))
            for plan in plans:
                if plan.state != "up-to-date":
                    continue
                marker = session.planner.read_marker(plan.name)
                assert marker is not None
                claims = self.claims(marker)
                assert self.seen(marker) == claims, plan.name
                assert self.on_disk(plan.name) == claims, plan.name
        finally:
            session.close()


SnapshotMachine.TestCase.settings = settings(
    max_examples=8,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_snapshot_machine = SnapshotMachine.TestCase
