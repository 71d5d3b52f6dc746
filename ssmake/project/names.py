"""The words the Ssmfile and the command lines share, in a module without imports
(so that `ssmake --help`, `ssm --help` and the quick `--check` need no task model):
ssmake's subcommands, which no task may be named, and the values of enumerated keys."""

COMMANDS: tuple[str, ...] = (
    "run",
    "status",
    "explain",
    "graph",
    "logs",
    "watch",
    "download",
    "clean",
    "gc",
    "init",
    "cancel",
    "completion",
)
DISTRIBUTIONS: tuple[str, ...] = ("FullyReplicated", "ShardedByS3Key")
TASK_OUTPUTS: tuple[str, ...] = ("model", "output", "state")
COMPLETIONS: tuple[str, ...] = ("job", "marked")
DOWNLOAD_KINDS: tuple[str, ...] = ("model", "output", "state", "logs")
BACKEND_NAMES: tuple[str, ...] = ("local", "sagemaker")
FRAMEWORKS: tuple[str, ...] = ("pytorch", "tensorflow")
