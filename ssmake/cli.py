"""The `ssmake` command. Errors become messages and exit codes here, and only here."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ssmake.errors import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    SsmakeError,
)
from ssmake.project.model import COMMANDS

__all__ = ["COMMANDS", "main"]

if TYPE_CHECKING:
    from ssmake.build.session import Session
    from ssmake.project.model import Project


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-C", dest="directory", metavar="DIR", default=".", help="run as if started in DIR"
    )
    parser.add_argument(
        "-f",
        "--file",
        dest="ssmfile",
        metavar="FILE",
        help="the Ssmfile to read (default: DIR/Ssmfile.toml)",
    )
    parser.add_argument(
        "--backend", choices=("local", "sagemaker"), help="override the project's backend"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say more")
    parser.add_argument(
        "-q", "--quiet", action="count", default=0, help="say less (no job log lines)"
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssmake",
        description="make for SageMaker training jobs: run only the tasks whose code, "
        "image, inputs or parameters changed, upstream first.",
        epilog="commands: " + ", ".join(COMMANDS) + " (default: run). See 'ssmake COMMAND --help'.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="build targets and what they need (the default)")
    _common(run)
    run.add_argument("targets", nargs="*", metavar="TARGET", help="tasks to build")
    run.add_argument("-n", "--dry-run", action="store_true", help="show what would run")
    run.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if anything is stale, 0 if all is up to date; run nothing",
    )
    run.add_argument(
        "-B",
        "--force",
        action="store_true",
        help="rerun the targets (all selected tasks when none is named)",
    )
    run.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        default=1,
        metavar="N",
        help="run up to N independent tasks at once",
    )
    run.add_argument(
        "-k",
        "--keep-going",
        action="store_true",
        help="keep running independent tasks after a failure",
    )
    run.add_argument("--json", action="store_true", help="print the plan or result as JSON")

    status = sub.add_parser("status", help="every task: up to date, stale (why) or running")
    _common(status)
    status.add_argument("targets", nargs="*", metavar="TARGET")
    status.add_argument("--json", action="store_true")

    explain = sub.add_parser("explain", help="what changed since a task's last run")
    _common(explain)
    explain.add_argument("task")

    graph = sub.add_parser("graph", help="print the task graph")
    _common(graph)
    graph.add_argument("--format", choices=("text", "dot", "mermaid"), default="text")

    logs = sub.add_parser("logs", help="print the logs of a task's last job")
    _common(logs)
    logs.add_argument("task")
    logs.add_argument("-F", "--follow", action="store_true", help="follow a running job")

    watch = sub.add_parser("watch", help="rebuild on every save")
    _common(watch)
    watch.add_argument("targets", nargs="*", metavar="TARGET")
    watch.add_argument("--on-busy", choices=("queue", "restart"), default="queue")
    watch.add_argument("--debounce", type=int, default=100, metavar="MS")
    watch.add_argument("-j", "--jobs", type=_positive, default=1, metavar="N")

    download = sub.add_parser("download", help="bring a task's results back")
    _common(download)
    download.add_argument("task")
    download.add_argument(
        "-o",
        "--dir",
        dest="out",
        metavar="DIR",
        help="where to (default: the task's output_path)",
    )
    for kind in ("model", "output", "state", "logs"):
        download.add_argument(f"--{kind}", action="store_true", help=f"download the {kind}")

    clean = sub.add_parser("clean", help="forget results so that tasks run again")
    _common(clean)
    clean.add_argument("tasks", nargs="*", metavar="TASK")
    clean.add_argument("--state", action="store_true", help="also delete the tasks' state")

    init = sub.add_parser("init", help="create an example Ssmfile.toml and worker")
    init.add_argument("-C", dest="directory", metavar="DIR", default=".")

    cancel = sub.add_parser("cancel", help="stop a task's running job")
    _common(cancel)
    cancel.add_argument("task")
    return parser


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser()
    args = list(argv)
    if not args or (args[0] not in COMMANDS and args[0] not in ("-h", "--help", "--version")):
        args.insert(0, "run")
    if args and args[0] == "--version":
        from ssmake import __version__

        print(f"ssmake {__version__}")
        raise SystemExit(0)
    return parser.parse_args(args)


def _load(args: argparse.Namespace) -> Project:
    from ssmake.project.load import load_project

    root = Path(args.directory).resolve()
    ssmfile = Path(args.ssmfile) if args.ssmfile else None
    if ssmfile is not None and not ssmfile.is_absolute():
        ssmfile = Path.cwd() / ssmfile
    return load_project(root, ssmfile)


def _session(args: argparse.Namespace) -> Session:
    from ssmake.build.session import open_session

    return open_session(_load(args), backend=getattr(args, "backend", None))


def _verbosity(args: argparse.Namespace) -> int:
    return int(getattr(args, "verbose", 0)) - int(getattr(args, "quiet", 0))


def cmd_run(args: argparse.Namespace) -> int:
    session = _session(args)
    try:
        if args.dry_run or args.check:
            return _plan(session, args)
        from ssmake.ui.report import make_reporter

        reporter = make_reporter(verbosity=_verbosity(args))
        force = (args.targets or _all_selected(session, args)) if args.force else []
        engine = session.engine(reporter, jobs=args.jobs, keep_going=args.keep_going)
        try:
            result = engine.build(args.targets, force=force)
        finally:
            close = getattr(reporter, "close", None)
            if close is not None:
                close()
    finally:
        session.close()
    if args.json:
        doc = {
            "project": session.project.name,
            "tasks": [
                {
                    "name": o.task,
                    "status": o.status,
                    "fingerprint": o.fingerprint,
                    "job": o.job,
                    "duration": round(o.duration, 3),
                    "reasons": o.reasons,
                    "message": o.message,
                }
                for o in result.outcomes
            ],
        }
        print(json.dumps(doc, indent=2))
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    if result.interrupted:
        print(
            f"ssmake: interrupted ({summary}); no marker was written for unfinished tasks",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if _verbosity(args) >= 0 or result.failed:
        print(f"ssmake: {summary}", file=sys.stderr)
    return EXIT_FAILED if result.failed else EXIT_OK


def _all_selected(session: Session, args: argparse.Namespace) -> list[str]:
    from ssmake.project.graph import select

    return select(session.project, args.targets)


def _plan(session: Session, args: argparse.Namespace) -> int:
    force = (args.targets or _all_selected(session, args)) if args.force else []
    plans = session.planner.plan(args.targets, force=force)
    if args.json:
        doc = {"project": session.project.name, "tasks": [p.as_json() for p in plans]}
        print(json.dumps(doc, indent=2))
    elif args.check:
        for p in plans:
            if p.state != "up-to-date":
                print(f"{p.name}: {p.state}: {'; '.join(p.reasons)}", file=sys.stderr)
    else:
        for p in plans:
            why = f" ({'; '.join(p.reasons)})" if p.reasons else ""
            print(f"{p.name}: {p.state}{why}")
    stale = any(p.state != "up-to-date" for p in plans)
    if args.check:
        return EXIT_FAILED if stale else EXIT_OK
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    session = _session(args)
    try:
        plans = session.planner.plan(args.targets)
    finally:
        session.close()
    if args.json:
        doc = {"project": session.project.name, "tasks": [p.as_json() for p in plans]}
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    width = max(len(p.name) for p in plans)
    for p in plans:
        why = (
            f"  {p.reasons[0]}" + (f" (+{len(p.reasons) - 1} more)" if len(p.reasons) > 1 else "")
            if p.reasons
            else ""
        )
        job = f"  [{p.job}]" if p.job and p.state == "up-to-date" else ""
        print(f"{p.name:<{width}}  {p.state}{job}{why}")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from ssmake.project.graph import select

    session = _session(args)
    try:
        select(session.project, [args.task])
        plans = {p.name: p for p in session.planner.plan([args.task])}
    finally:
        session.close()
    plan = plans[args.task]
    if plan.state == "up-to-date":
        print(f"{args.task} is up to date (job {plan.job}, fingerprint {plan.fingerprint})")
        return EXIT_OK
    print(f"{args.task} is {plan.state}:")
    for reason in plan.reasons:
        print(f"  - {reason}")
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from ssmake.project.graph import order

    project = _load(args)
    names = order(project)
    edges = [(u, n) for n in names for u in project.tasks[n].upstream()]
    if args.format == "dot":
        print(f'digraph "{project.name}" {{')
        for n in names:
            print(f'  "{n}";')
        for u, n in edges:
            print(f'  "{u}" -> "{n}";')
        print("}")
    elif args.format == "mermaid":
        print("graph TD")
        for n in names:
            print(f"  {n.replace('-', '_')}[{n}]")
        for u, n in edges:
            print(f"  {u.replace('-', '_')} --> {n.replace('-', '_')}")
    else:
        for n in names:
            ups = project.tasks[n].upstream()
            print(f"{n}" + (f" <- {', '.join(ups)}" if ups else ""))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from ssmake.plan import layout
    from ssmake.project.graph import select

    session = _session(args)
    select(session.project, [args.task])
    marker = session.planner.read_marker(args.task)
    inflight = session.planner.read_inflight(args.task)
    job = (inflight or {}).get("job") or (marker or {}).get("job")
    if not job:
        raise SsmakeError(f"task {args.task} has no job yet: run 'ssmake {args.task}' first")
    if args.follow and inflight is not None:
        return _follow(session, args.task, str(job))
    prefix = layout.logs_prefix(session.project.name, args.task, str(job))
    objects = list(session.store.list(prefix))
    if not objects:
        run_logs = session.work_dir / "runs" / str(job) / "logs"
        files = sorted(run_logs.glob("*.log")) if run_logs.is_dir() else []
        if not files:
            raise SsmakeError(f"no logs stored for job {job} of task {args.task}")
        for path in files:
            for line in path.read_text(errors="replace").splitlines():
                print(f"[{path.stem}] {line}")
        return EXIT_OK
    for obj in objects:
        host = obj.key[len(prefix) :].removesuffix(".log")
        for line in session.store.get(obj.key).decode(errors="replace").splitlines():
            print(f"[{host}] {line}")
    return EXIT_OK


def _follow(session: Session, task: str, job: str) -> int:
    """Print a running job's log lines as they come, until it ends."""
    import threading
    import time

    backend = session.backend()
    if backend.detaches:
        result = backend.wait(
            job,
            lambda host, line: print(f"[{host}] {line}", flush=True),
            lambda status: print(f"ssmake: {task}: {status}", file=sys.stderr),
            threading.Event(),
        )
        print(f"ssmake: {task}: job {job} {result.status.lower()}", file=sys.stderr)
        return EXIT_OK
    from ssmake.build.inflight import holder_alive

    logs = session.work_dir / "runs" / job / "logs"
    offsets: dict[Path, int] = {}
    while True:
        record = session.planner.read_inflight(task)
        # A record whose ssmake process died is no running job: stop following.
        running = record is not None and holder_alive(record)
        for path in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            with path.open("rb") as f:
                f.seek(offsets.get(path, 0))
                data = f.read()
            complete = data[: data.rfind(b"\n") + 1]
            offsets[path] = offsets.get(path, 0) + len(complete)
            for line in complete.decode(errors="replace").splitlines():
                print(f"[{path.stem}] {line}", flush=True)
        if not running:
            return EXIT_OK
        time.sleep(0.2)


def cmd_download(args: argparse.Namespace) -> int:
    from ssmake.build.downloads import download_results
    from ssmake.project.graph import select

    session = _session(args)
    select(session.project, [args.task])
    task = session.project.tasks[args.task]
    marker = session.planner.read_marker(args.task)
    if marker is None:
        raise SsmakeError(f"task {args.task} has no result yet: run 'ssmake {args.task}' first")
    kinds = [k for k in ("model", "output", "state", "logs") if getattr(args, k)]
    kinds = kinds or list(task.download) or ["model", "output"]
    out = args.out or task.output_path or f"output/{args.task}"
    dest = Path(out) if Path(out).is_absolute() else session.project.root / out
    for path in download_results(
        session.store, session.project.name, args.task, marker, dest, kinds
    ):
        print(path)
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from ssmake.plan import layout
    from ssmake.project.graph import select

    session = _session(args)
    names = select(session.project, args.tasks) if args.tasks else list(session.project.tasks)
    if args.tasks:
        names = list(args.tasks)
    store = session.store
    proj = session.project.name
    for name in names:
        store.delete_prefix(f"{proj}/{name}/runs/")
        store.delete(layout.marker_key(proj, name))
        # The synced inputs and their sync manifests: the next run uploads afresh.
        store.delete_prefix(layout.input_prefix(proj, name))
        what = "marker, run records and synced inputs"
        if args.state:
            store.delete_prefix(layout.state_prefix(proj, name))
            what += " and state"
        print(f"{name}: removed {what}", file=sys.stderr)
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from ssmake.commands.init import write_example

    for path in write_example(Path(args.directory)):
        print(f"created {path}", file=sys.stderr)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from ssmake.project.graph import select

    session = _session(args)
    select(session.project, [args.task])
    inflight = session.planner.read_inflight(args.task)
    if inflight is None:
        raise SsmakeError(f"task {args.task} has no running job")
    session.backend().stop(str(inflight["job"]))
    print(f"stopping job {inflight['job']} of task {args.task}", file=sys.stderr)
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    from ssmake.build.watch import watch

    return watch(args)


HANDLERS = {
    "run": cmd_run,
    "status": cmd_status,
    "explain": cmd_explain,
    "graph": cmd_graph,
    "logs": cmd_logs,
    "download": cmd_download,
    "clean": cmd_clean,
    "init": cmd_init,
    "cancel": cmd_cancel,
    "watch": cmd_watch,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ssmake command line; returns the exit code."""
    try:
        args = _parse(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        return HANDLERS[args.command](args)
    except SsmakeError as e:
        print(f"ssmake: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ssmake: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        traceback.print_exc()
        print(
            "ssmake: internal error (a bug in ssmake): please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
