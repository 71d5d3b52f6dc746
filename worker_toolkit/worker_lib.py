"""What a worker script needs to know about the job it runs in.

A job runs ``python <entry_point> --key value ...`` (one ``--key value`` pair per
hyperparameter) on every instance (``algo-1`` ... ``algo-N``), with the code
directory as working directory. This module reads the environment the job
runner sets up (ssmake's local backend and SageMaker alike) and gives it back
as one namespace::

    import logging
    import os
    import sys

    from worker_toolkit import worker_lib

    logging.basicConfig(stream=sys.stdout)
    worker_lib.setDebugLevel()
    args = worker_lib.parseArgs()

    state_dir = worker_lib.initMultiWorkersState(args)  # <state>/<current_host>
    worker_lib.onTermination(lambda: save_checkpoint(state_dir))

    for name in os.listdir(args.input_data):  # the "data" channel ("" if none)
        ...
    with open(os.path.join(args.model_dir, "model.bin"), "wb") as f:
        ...
    worker_lib.markCompleted(args)

Where things go:

- ``args.model_dir``: packed into ``model.tar.gz``; the files of all instances
  are merged, so keep names distinct per instance.
- ``args.output_data_dir``: packed into ``output.tar.gz``; only the main
  instance's files are kept.
- ``args.state``: kept between the jobs of one task and shared by all its
  instances; write into :func:`initMultiWorkersState`'s directory to avoid
  collisions.

Every value comes from the ``SM_*`` environment variables when they are set,
and otherwise from SageMaker's own files and defaults (``/opt/ml/...``,
``/opt/ml/input/config/*.json``), so a script also runs in a SageMaker
container that does not set them.

Standard library only; this module is copied into every job's code and runs on
the container's Python (3.6 and later).
"""

import argparse
import ast
import glob
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

# Part of worker_lib's API: `worker_lib.extractUpstream(args.input_prepared)`.
from worker_toolkit.upstream import extractUpstream as extractUpstream

logger = logging.getLogger(__name__)

COMPLETED_FILE_NAME = "__COMPLETED__"
"""Written by :func:`markCompleted` into each instance's state directory."""

TERMINATED_EXIT_STATUS = 143
"""Exit status after SIGTERM (128 + 15), as a shell reports a process killed by it."""

DEFAULT_STATE_DIR = "/state"
_DEFAULT_MODEL_DIR = "/opt/ml/model"
_DEFAULT_OUTPUT_DIR = "/opt/ml/output"
_DEFAULT_INPUT_DIR = "/opt/ml/input"
_DEFAULT_HOST = "algo-1"
_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


def parseArgs() -> argparse.Namespace:
    """Describe the job this instance runs in.

    Returns a namespace with:

    - ``hps``: the hyperparameters as a dict, with their JSON types
      (``{"task": 1, "msg": "hi"}``);
    - ``input_<channel>``: the directory of every input channel, and
      ``input_data`` always (the ``-i`` input; ``""`` when the job has none);
    - ``channel_names``: the channel names, as a list;
    - ``state``: the task's state directory (``SSM_STATE_DIR``, default ``/state``);
    - ``model_dir``, ``output_data_dir``, ``output_dir``, ``input_dir``,
      ``input_config_dir``: the job's directories;
    - ``current_host`` (e.g. ``"algo-1"``) and ``hosts`` (all instances, a list);
    - ``num_cpus`` and ``num_gpus`` (ints);
    - ``job_name``: the training job's name.

    Each hyperparameter is also an attribute (``args.msg``) unless its name is
    one of the fields above, in which case it is only in ``args.hps``.

    The ``--key value`` arguments the job passes on the command line are
    tolerated, never rejected. Outside any job (``python worker.py --task 1``)
    they are the hyperparameters, read as SageMaker renders them (``-k 5`` for a
    one-letter name, ``True``, ``[64, 32]``), each value decoded as JSON, or as
    a Python literal, when it is one.
    """
    model_dir = _env("SM_MODEL_DIR", _DEFAULT_MODEL_DIR)
    output_dir = _env("SM_OUTPUT_DIR", _DEFAULT_OUTPUT_DIR)
    output_data_dir = _env("SM_OUTPUT_DATA_DIR", os.path.join(output_dir, "data"))
    input_dir = _env("SM_INPUT_DIR", _DEFAULT_INPUT_DIR)
    input_config_dir = _env("SM_INPUT_CONFIG_DIR", os.path.join(input_dir, "config"))
    resource_config = _read_json_file(os.path.join(input_config_dir, "resourceconfig.json"))

    current_host = _env("SM_CURRENT_HOST", resource_config.get("current_host", _DEFAULT_HOST))
    hosts = _env_json("SM_HOSTS", resource_config.get("hosts", [current_host]))
    channel_names = _channel_names(input_dir, input_config_dir)
    hps = _hyperparameters(input_config_dir, sys.argv[1:])

    args = argparse.Namespace(
        hps=hps,
        channel_names=channel_names,
        input_data="",
        state=_env("SSM_STATE_DIR", DEFAULT_STATE_DIR),
        model_dir=model_dir,
        output_data_dir=output_data_dir,
        output_dir=output_dir,
        input_dir=input_dir,
        input_config_dir=input_config_dir,
        current_host=current_host,
        hosts=list(hosts),
        num_cpus=int(_env("SM_NUM_CPUS", str(os.cpu_count() or 1))),
        num_gpus=int(_env("SM_NUM_GPUS", str(_count_gpus()))),
        job_name=_job_name(),
    )
    for channel in channel_names:
        channel_dir = _env(
            "SM_CHANNEL_" + channel.upper(), os.path.join(input_dir, "data", channel)
        )
        setattr(args, "input_" + channel, channel_dir)
        # Channel names may hold "-" or "."; give them a name usable as args.input_x too.
        identifier = "input_" + re.sub(r"\W", "_", channel)
        if not hasattr(args, identifier):
            setattr(args, identifier, channel_dir)
    for name, value in hps.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


def initMultiWorkersState(args: argparse.Namespace) -> str:
    """Create and return this instance's own state directory, ``<state>/<current_host>``.

    The state directories of all instances are merged into one, so each
    instance should keep its files under its own subdirectory.
    """
    logger.info("Creating instance specific state dir")
    state_dir = os.path.join(str(args.state), str(args.current_host))
    os.makedirs(state_dir, exist_ok=True)
    return state_dir


def markCompleted(args: argparse.Namespace) -> None:
    """Mark this instance's share of the task as done.

    Writes ``<state>/<current_host>/__COMPLETED__`` holding the job name. A task
    whose completion rule is "marked" counts as complete only when every
    instance of the same job called this (see :func:`isCompleted`); a marker
    left by an earlier job of the task does not count.
    """
    logger.info("Marking instance %s completion", args.current_host)
    state_dir = initMultiWorkersState(args)
    with open(os.path.join(state_dir, COMPLETED_FILE_NAME), "w") as marker:
        marker.write(args.job_name)


def isCompleted(state_dir: str, hosts: "Sequence[str]", job_name: str) -> bool:
    """Tell whether every one of ``hosts`` called :func:`markCompleted` in job ``job_name``.

    ``state_dir`` is the task's state directory as the instances left it. A
    host without a ``__COMPLETED__`` file, or with one written by another job,
    makes the answer False; so does an empty ``hosts``. Only reads files.
    """
    if not hosts:
        return False
    for host in hosts:
        try:
            with open(os.path.join(state_dir, host, COMPLETED_FILE_NAME)) as marker:
                marked_by = marker.read().strip()
        except FileNotFoundError:
            return False
        if marked_by != job_name:
            return False
    return True


def setDebugLevel() -> None:
    """Make this module's and the script's log records visible.

    Sets the level of the root logger and of this module's logger to the one
    named by the environment variable ``SSM_DEBUG_LEVEL`` (``DEBUG``, ``INFO``,
    ``WARNING``, ``ERROR`` or ``CRITICAL``), and to INFO when it is unset or
    names no level. When logging is not configured yet, it also logs to stdout,
    which becomes the job's log.
    """
    level = _LEVELS.get(os.environ.get("SSM_DEBUG_LEVEL", "").strip().upper(), logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(stream=sys.stdout)
    root.setLevel(level)
    logger.setLevel(level)


class _Termination:
    """What the SIGTERM handler knows; one per process."""

    def __init__(self) -> None:
        self.requested = False
        self.callback: Callable[[], None] | None = None

    def handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            # Already stopping: a repeated SIGTERM must not run the callback twice.
            return
        self.requested = True
        callback = self.callback
        if callback is None:
            logger.info("Termination requested")
            return
        # The callback runs on its own thread, not inside the signal handler: the
        # signal may land while the main thread holds stdout's lock (in the middle
        # of a print), and a print from the handler would then fail as reentrant.
        threading.Thread(target=self._run_and_exit, args=(callback,)).start()

    @staticmethod
    def _run_and_exit(callback: "Callable[[], None]") -> None:
        logger.info("Termination requested, running the termination callback")
        try:
            callback()
        except Exception:
            logger.exception("The termination callback failed")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        # os._exit rather than sys.exit: a SystemExit can be swallowed by the
        # script's own "except", and non-daemon threads would keep the process
        # alive until SageMaker's SIGKILL.
        os._exit(TERMINATED_EXIT_STATUS)


_termination = _Termination()


def onTermination(callback: "Callable[[], None] | None" = None) -> None:
    """Run ``callback`` when the job is stopped, then exit.

    SageMaker sends SIGTERM when a spot instance is reclaimed, when the job
    reaches its maximum run time, or when it is stopped, and SIGKILL 120 seconds
    later; ssmake's local backend does the same. After this call, the first
    SIGTERM runs ``callback()`` once (e.g. to save a checkpoint into
    ``args.state``) and then exits the process with status 143. Files written
    to ``args.state`` before the exit are kept for the task's next job. The
    exit skips ``finally`` blocks and ``atexit`` handlers, so do the cleanup
    that matters in the callback.

    With ``callback=None`` the process is not stopped: SIGTERM only makes
    :func:`terminationRequested` return True, for loops that would rather
    save their state and return by themselves.

    Call it from the main thread; a later call replaces the callback.
    """
    _termination.callback = callback
    signal.signal(signal.SIGTERM, _termination.handle)


def terminationRequested() -> bool:
    """Tell whether SIGTERM arrived since :func:`onTermination` was called.

    Meant for ``onTermination(None)``: poll it in the training loop, save state
    and leave the loop when it turns True.
    """
    return _termination.requested


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None else value


def _env_json(name: str, default: Any) -> Any:
    value = os.environ.get(name)
    return default if value is None else json.loads(value)


def _read_json_file(path: str) -> "dict[str, Any]":
    try:
        with open(path) as f:
            content = json.load(f)
    except FileNotFoundError:
        return {}
    return content if isinstance(content, dict) else {}


def _decode_value(text: str) -> Any:
    """SageMaker passes hyperparameters as strings; most of them hold JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _channel_names(input_dir: str, input_config_dir: str) -> "list[str]":
    if "SM_CHANNELS" in os.environ:
        return [str(name) for name in json.loads(os.environ["SM_CHANNELS"])]
    input_data_config = _read_json_file(os.path.join(input_config_dir, "inputdataconfig.json"))
    if input_data_config:
        return list(input_data_config)
    data_dir = os.path.join(input_dir, "data")
    if not os.path.isdir(data_dir):
        return []
    return sorted(
        name for name in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, name))
    )


def _hyperparameters(input_config_dir: str, argv: "list[str]") -> "dict[str, Any]":
    if "SM_HPS" in os.environ:
        hps: dict[str, Any] = json.loads(os.environ["SM_HPS"])
        return hps
    path = os.path.join(input_config_dir, "hyperparameters.json")
    if os.path.isfile(path):
        # SageMaker's own parameters (sagemaker_program, ...) are not the user's.
        return {
            name: _decode_value(str(value))
            for name, value in _read_json_file(path).items()
            if not name.startswith("sagemaker_")
        }
    return _hyperparameters_from_argv(argv)


def _hyperparameters_from_argv(argv: "list[str]") -> "dict[str, Any]":
    """Read ``--key value``, ``--key=value``, ``-k value`` and a bare ``--flag`` (True)."""
    hps: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg.startswith("--") and len(arg) > 2:
            name, equals, value = arg[2:].partition("=")
        elif _is_short_name(arg):
            name, equals, value = arg[1], "", ""
        else:
            continue
        if equals:
            hps[name] = _decode_argument(value)
        elif i < len(argv) and not argv[i].startswith("--") and not _is_short_name(argv[i]):
            hps[name] = _decode_argument(argv[i])
            i += 1
        else:
            hps[name] = True
    return hps


def _is_short_name(arg: str) -> bool:
    # SageMaker passes a one-letter hyperparameter as -k; -1 is a value.
    return len(arg) == 2 and arg[0] == "-" and arg[1].isalpha()


def _decode_argument(text: str) -> Any:
    """An argument as SageMaker renders it: JSON, or a Python literal (True, ['a'])."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _job_name() -> str:
    if "TRAINING_JOB_NAME" in os.environ:
        return os.environ["TRAINING_JOB_NAME"]
    training_env = _env_json("SM_TRAINING_ENV", {})
    return str(training_env.get("job_name", "")) if isinstance(training_env, dict) else ""


def _count_gpus() -> int:
    return len(glob.glob("/dev/nvidia[0-9]*"))
