"""A task's snapshot: every file its job receives, as it was when fingerprinted.

Planning a stale task makes one: for the code tarball, archive name -> file; for
each local input, relative name -> file; each with its path, size, executable
bit and sha256. The fingerprint is computed from it, and staging reads exactly
those files again, hashing the bytes as they stream into the tarball or the
store, and compares (`Verifier`). A file that differs was changed between the
two reads: staging stops with `ChangedWhileStaging`, nothing is recorded for
that content, and the task is planned again (Bazel's "file modified during the
build").
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from ssmake.errors import SsmakeError


@dataclass(frozen=True)
class FileEntry:
    """One file as the snapshot saw it."""

    path: str  # where it is on disk
    shown: str  # how the user knows it (relative to the project when inside it)
    size: int
    sha256: str
    executable: bool


@dataclass
class Snapshot:
    """What one task's job will receive of the user's files."""

    task: str
    code: dict[str, FileEntry] = field(default_factory=dict)
    inputs: dict[str, dict[str, FileEntry]] = field(default_factory=dict)


class ChangedWhileStaging(SsmakeError):
    """A file's bytes differ from the snapshot its task was fingerprinted from."""

    def __init__(self, entry: FileEntry) -> None:
        super().__init__(f"{entry.shown} changed while it was being staged; run again")
        self.entry = entry


def is_executable(st: os.stat_result) -> bool:
    return bool(st.st_mode & 0o111)


class Verifier:
    """Hashes the bytes of one file as they are read, to compare with its entry."""

    def __init__(self, entry: FileEntry) -> None:
        self.entry = entry
        self.digest = hashlib.sha256()
        self.seen = 0

    def check_stat(self, st: os.stat_result) -> None:
        """Before reading: the opened file's size and mode are the snapshot's."""
        if st.st_size != self.entry.size or is_executable(st) != self.entry.executable:
            raise ChangedWhileStaging(self.entry)

    def update(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.seen += len(chunk)

    def finish(self) -> None:
        """After reading: the bytes read are the snapshot's bytes."""
        if self.seen != self.entry.size or self.digest.hexdigest() != self.entry.sha256:
            raise ChangedWhileStaging(self.entry)


class VerifiedReader:
    """A binary file open for reading that verifies what is read through it (for
    tarfile and copies). Use it as a context manager and call `finish()` once the
    content has been read: the whole file must be the snapshot's."""

    def __init__(self, entry: FileEntry) -> None:
        # O_NONBLOCK: should a fifo have taken the file's place, it opens at once.
        try:
            self._fd = os.open(entry.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise ChangedWhileStaging(entry) from None
        self.verifier = Verifier(entry)
        try:
            self.verifier.check_stat(os.fstat(self._fd))
        except BaseException:
            os.close(self._fd)
            raise

    def __enter__(self) -> VerifiedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)

    def fileno(self) -> int:
        return self._fd

    def read(self, n: int = -1) -> bytes:
        chunk = os.read(self._fd, n if n >= 0 else self.verifier.entry.size + 1)
        self.verifier.update(chunk)
        return chunk

    def finish(self) -> None:
        """Read whatever is left (a file that grew differs) and check the whole."""
        while chunk := os.read(self._fd, 1 << 20):
            self.verifier.update(chunk)
        self.verifier.finish()
