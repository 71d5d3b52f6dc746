"""Names a task may not take: ssmake's subcommands. A module of its own, without
imports, so that the command line reads it without loading the task model."""

COMMANDS: tuple[str, ...] = (
    "run",
    "status",
    "explain",
    "graph",
    "logs",
    "watch",
    "download",
    "clean",
    "init",
    "cancel",
    "completion",
)
