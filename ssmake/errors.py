"""The errors a user is meant to see. Anything else is a bug (exit 3)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class SsmakeError(Exception):
    """An error with a message for the user and the exit code to leave with."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None, *, setup: bool = False) -> None:
        super().__init__(message)
        self.message = message
        #: The user's environment must be fixed (AWS credentials, profile, region): a
        #: build whose task fails for it exits 2, as for a bad Ssmfile.
        self.setup = setup
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class ConfigError(SsmakeError):
    """The Ssmfile (or the flags standing for one) is invalid."""


class StoreError(SsmakeError):
    """Reading or writing the store failed."""


class KeyNotFound(StoreError):
    """A key the caller asked for is not in the store."""


class BackendError(SsmakeError):
    """The backend could not launch, describe or stop a job."""


class ArchiveError(SsmakeError):
    """A tarball is unsafe or broken."""


class TaskFailed(SsmakeError):
    """A job ran and failed; the task is left without a marker. `log_tail` is the
    failing instance's last log lines, which reporters print unless they showed them."""

    exit_code = EXIT_FAILED

    def __init__(
        self, message: str, *, job: str | None = None, log_tail: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.job = job
        self.log_tail = log_tail


class RequirementsFailed(TaskFailed):
    """pip could not install a task's requirements, before its code ran."""


class TaskCancelled(TaskFailed):
    """The task's job was stopped by `ssmake cancel` (or by hand): no marker."""


class ImageError(SsmakeError):
    """Resolving, building, pulling or pushing a task's image failed."""

    exit_code = EXIT_FAILED
