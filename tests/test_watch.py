"""`ssmake watch` on real filesystem events: each save reruns what it made stale.

Jobs append "<job> <pid>" to a file outside the project ($WATCH_LAUNCHES), so a
test counts launches by task. Waits poll with a bound; a "nothing happened"
check first saves a file unchanged and waits for the build that save triggers:
events arrive in order, so every earlier one has been handled by then.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ProjectDir

from ssmake.build.watch import Watcher
from ssmake.ui.report import PlainWatchView

REPO = Path(__file__).resolve().parent.parent
BOUND = 10.0

TWO_TASKS = """
[project]
name = "demo"

[tasks.a]
source_dir = "a"
entry_point = "main.py"
hyperparameters = { lr = 1 }
output_path = "out/a"

[tasks.b]
source_dir = "b"
entry_point = "main.py"
"""


def worker(*, gate: Path | None = None, fail: bool = False, version: int = 1) -> str:
    """A job that records its launch, then waits for `gate` (at most 30 s) or fails."""
    lines = [
        "import json, os, sys, time",
        "from pathlib import Path",
        f"VERSION = {version}",
        'job = json.loads(os.environ["SM_TRAINING_ENV"])["job_name"]',
        'with open(os.environ["WATCH_LAUNCHES"], "a") as f:',
        '    f.write(f"{job} {os.getpid()}\\n")',
    ]
    if gate is not None:
        lines += [
            "deadline = time.time() + 30",
            f"while not Path({str(gate)!r}).exists() and time.time() < deadline:",
            "    time.sleep(0.02)",
        ]
    if fail:
        lines.append('sys.exit("boom: this task is broken")')
    return "\n".join(lines) + "\n"


@dataclass
class Watching:
    """A Watcher on the project, its output, and the jobs it launched."""

    watcher: Watcher
    log: io.StringIO
    launches_file: Path

    def launches(self, task: str) -> list[str]:
        """Job names of `task` in launch order."""
        if not self.launches_file.exists():
            return []
        jobs = [line.split()[0] for line in self.launches_file.read_text().splitlines()]
        return [j for j in jobs if j.split("-")[0] == task]

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        if not self.watcher.wait_until(condition, BOUND):
            pytest.fail(f"timed out waiting for {what}; watch output:\n{self.log.getvalue()}")

    def builds_done(self, n: int) -> None:
        """Wait until `n` builds have ended and nothing is waiting; exactly `n`."""
        w = self.watcher
        self.wait(lambda: len(w.builds) >= n and w.idle, f"{n} builds")
        assert len(w.builds) == n, [b.trigger for b in w.builds]

    def settle(self, path: Path) -> None:
        """Save `path` unchanged and wait for the build it triggers."""
        w = self.watcher
        before = len(w.builds)
        rel = path.relative_to(w.root).as_posix()
        path.write_text(path.read_text())
        self.wait(
            lambda: any(rel in b.trigger for b in w.builds[before:]) and w.idle,
            f"the build triggered by {rel}",
        )


@pytest.fixture
def watch(
    project: ProjectDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Watching]]:
    launches = tmp_path / "launches.txt"
    monkeypatch.setenv("WATCH_LAUNCHES", str(launches))
    started: list[Watcher] = []

    def start(**options: object) -> Watching:
        log = io.StringIO()
        watcher = Watcher(project.root, view=PlainWatchView(log), **options)  # type: ignore[arg-type]
        started.append(watcher)
        watcher.start()
        return Watching(watcher, log, launches)

    yield start
    for watcher in started:
        watcher.stop()


def two_tasks(project: ProjectDir, **a_options: object) -> None:
    project.ssmfile(TWO_TASKS)
    project.write("a/main.py", worker(**a_options))  # type: ignore[arg-type]
    project.write("b/main.py", worker())


def marker(project: ProjectDir, task: str) -> dict[str, object] | None:
    path = project.store("demo", task, "ssmake.json")
    return json.loads(path.read_text()) if path.exists() else None  # type: ignore[no-any-return]


def test_a_save_reruns_only_the_task_that_reads_it(
    project: ProjectDir, watch: Callable[..., Watching]
) -> None:
    two_tasks(project)
    w = watch()
    w.builds_done(1)
    assert len(w.launches("a")) == len(w.launches("b")) == 1

    project.write("a/main.py", worker(version=2))

    w.builds_done(2)
    assert w.watcher.builds[1].trigger == ("a/main.py",)
    assert len(w.launches("a")) == 2 and len(w.launches("b")) == 1
    assert "ssmake: watch: change in a/main.py: rebuilding" in w.log.getvalue()


def test_saves_to_ignored_paths_do_nothing(
    project: ProjectDir, watch: Callable[..., Watching]
) -> None:
    two_tasks(project)
    project.write(".gitignore", "*.log\n")
    project.write("a/.ssmakeignore", "scratch/\n")
    w = watch()
    w.builds_done(1)

    ignored = [
        "a/debug.log",  # .gitignore
        "a/scratch/notes.py",  # .ssmakeignore
        "a/__pycache__/main.cpython-311.pyc",
        ".ssmake/demo/junk.json",  # the store
        "out/a/model/weights.bin",  # an output path
        "README.md",  # read by no task
    ]
    # Editor files come and go; the fingerprint would count them if they stayed.
    editor = ["a/.main.py.swp", "a/.main.py.swx", "a/main.py~", "a/.#main.py", "a/#main.py#"]
    editor += ["a/4913", "a/main.py.tmp"]
    for rel in ignored + editor:
        project.write(rel, "changed\n")
    for rel in editor:
        (project.root / rel).unlink()
    w.settle(project.root / "a/main.py")

    assert [b.trigger for b in w.watcher.builds[1:]] == [("a/main.py",)]
    assert len(w.launches("a")) == 1 and len(w.launches("b")) == 1
    assert "a is up to date" in w.log.getvalue()


def test_a_burst_of_50_writes_gives_one_run(
    project: ProjectDir, watch: Callable[..., Watching]
) -> None:
    two_tasks(project)
    w = watch(debounce=0.5)
    w.builds_done(1)

    for i in range(50):
        project.write("a/main.py", worker(version=100 + i))

    w.builds_done(2)
    w.settle(project.root / "a/main.py")
    assert len(w.launches("a")) == 2
    assert [b.trigger for b in w.watcher.builds[1:]] == [("a/main.py",), ("a/main.py",)]
    # The one run saw the last write: a is up to date with it.
    status = project.run("status", "--json")
    states = {t["name"]: t["state"] for t in json.loads(status.out)["tasks"]}
    assert states == {"a": "up-to-date", "b": "up-to-date"}


def test_saves_during_a_build_queue_exactly_one_follow_up(
    project: ProjectDir, watch: Callable[..., Watching], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    two_tasks(project, gate=gate)
    w = watch()
    w.wait(lambda: len(w.launches("a")) == 1, "a's slow job to start")

    project.write("a/main.py", worker(version=2))
    w.wait(lambda: w.watcher.queued == ("a/main.py",), "the first save to be queued")
    project.write("a/util.py", "X = 1\n")
    w.wait(lambda: "a/util.py" in w.watcher.queued, "the second save to be queued")
    assert len(w.launches("a")) == 1  # the running job was left alone
    gate.touch()

    w.builds_done(2)
    first, follow_up = w.watcher.builds
    assert first.result is not None and not first.result.interrupted
    assert follow_up.trigger == ("a/main.py", "a/util.py") and follow_up.targets == ("a",)
    w.settle(project.root / "b/main.py")
    assert len(w.launches("a")) == 2 and len(w.launches("b")) == 1
    assert "change in a/main.py: queued" in w.log.getvalue()


def test_restart_stops_the_running_job_and_relaunches(
    project: ProjectDir, watch: Callable[..., Watching], tmp_path: Path
) -> None:
    two_tasks(project, gate=tmp_path / "never")
    w = watch(on_busy="restart")
    w.wait(lambda: len(w.launches("a")) == 1, "a's slow job to start")

    project.write("a/main.py", worker(version=2))

    w.builds_done(2)
    stopped, rebuilt = w.watcher.builds
    assert stopped.restarted and stopped.result is not None and stopped.result.interrupted
    assert {o.task: o.status for o in stopped.result.outcomes}["a"] == "interrupted"
    # b was not launched once the build was stopping; the next build owes it a run.
    assert rebuilt.targets == ("a", "b") and len(w.launches("b")) == 1
    assert rebuilt.result is not None and not rebuilt.result.failed
    first_job, second_job = w.launches("a")
    doc = marker(project, "a")
    assert doc is not None and doc["job"] == second_job
    # The stopped job left neither a marker, nor a run record, nor outputs.
    assert len(list(project.store("demo", "a", "runs").iterdir())) == 1
    assert not project.store("demo", "a", first_job, "output").exists()
    assert "stopping the running build to restart it" in w.log.getvalue()


def test_editing_the_ssmfile_reloads_it(
    project: ProjectDir, watch: Callable[..., Watching]
) -> None:
    two_tasks(project)
    w = watch()
    w.builds_done(1)

    project.ssmfile(TWO_TASKS.replace("lr = 1", "lr = 2"))

    w.builds_done(2)
    assert len(w.launches("a")) == 2 and len(w.launches("b")) == 1
    doc = marker(project, "a")
    assert doc is not None
    assert doc["components"]["params"]["hyperparameters"] == {"lr": 2}  # type: ignore[index]


def test_an_invalid_ssmfile_is_shown_and_the_watch_goes_on_until_it_is_fixed(
    project: ProjectDir, watch: Callable[..., Watching]
) -> None:
    two_tasks(project)
    w = watch()
    w.builds_done(1)

    project.ssmfile(TWO_TASKS.replace("lr = 1", "lr = 2, learning_rate = "))
    w.wait(lambda: w.watcher.config_error is not None, "the Ssmfile error")
    error = "ssmake: error: Ssmfile.toml"
    assert error in w.log.getvalue()
    # A save elsewhere while it is broken retries the load, and fails again.
    project.write("a/main.py", worker(version=2))
    w.wait(lambda: w.log.getvalue().count(error) == 2, "the retry")
    assert len(w.watcher.builds) == 1

    project.ssmfile(TWO_TASKS.replace("lr = 1", "lr = 3"))

    w.builds_done(2)
    assert w.watcher.config_error is None
    assert "Ssmfile.toml is valid again" in w.log.getvalue()
    assert len(w.launches("a")) == 2 and len(w.launches("b")) == 1


def test_a_failing_task_is_shown_and_retried_after_a_save_to_its_files(
    project: ProjectDir, watch: Callable[..., Watching]
) -> None:
    two_tasks(project, fail=True)
    w = watch()
    w.builds_done(1)
    first = w.watcher.builds[0].result
    assert first is not None and first.failed
    assert "ssmake: a: FAILED" in w.log.getvalue() and "boom" in w.log.getvalue()
    assert {o.task: o.status for o in first.outcomes} == {"a": "failed", "b": "done"}

    # A save to b's files rebuilds b only: a is not retried with nothing changed.
    project.write("b/main.py", worker(version=2))
    w.builds_done(2)
    assert len(w.launches("a")) == 1 and len(w.launches("b")) == 2

    project.write("a/main.py", worker(version=2))

    w.builds_done(3)
    last = w.watcher.builds[2].result
    assert last is not None and [(o.task, o.status) for o in last.outcomes] == [("a", "done")]
    assert len(w.launches("a")) == 2


def test_ctrl_c_stops_the_local_job_and_exits_130(project: ProjectDir, tmp_path: Path) -> None:
    two_tasks(project, gate=tmp_path / "never")
    launches = tmp_path / "launches.txt"
    env = dict(os.environ, WATCH_LAUNCHES=str(launches), PYTHONPATH=str(REPO))
    code = "import sys; from ssmake.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "watch", "-C", str(project.root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + BOUND
        while not (launches.exists() and launches.read_text().endswith("\n")):
            assert proc.poll() is None and time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "ssmake: watch: stopped (Ctrl-C); no marker was written" in err
    pid = int(launches.read_text().split()[1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert marker(project, "a") is None


def test_importing_the_cli_imports_neither_watchdog_nor_rich() -> None:
    code = "import sys, ssmake.cli; print(sorted({'watchdog', 'rich'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"
