"""watchdog watches over the directories a watch plans, kept in step with the plan."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers.api import BaseObserver, ObservedWatch

# The paths of one file-system event (its source, and its destination for a move)
# and whether it is about a directory.
OnSave = Callable[[Sequence[Path], bool], None]


class SaveObserver:
    """Reports every create, save, delete and move under the watched directories to
    `on_save`, from watchdog's thread; start() and rewatch() say which directories
    (each recursively or not), stop() ends it."""

    def __init__(self, on_save: OnSave) -> None:
        self.on_save = on_save
        self._observer: BaseObserver | None = None
        self._handler: FileSystemEventHandler | None = None
        self._watches: dict[Path, tuple[ObservedWatch, bool, tuple[int, int]]] = {}

    def start(self, plan: Mapping[Path, bool]) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        on_save = self.on_save

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                raw = (event.src_path, event.dest_path)
                on_save([Path(os.fsdecode(p)) for p in raw if p], event.is_directory)

        self._handler = Handler()
        self._observer = Observer()
        self.rewatch(plan)
        self._observer.start()

    def rewatch(self, plan: Mapping[Path, bool]) -> None:
        """Watch what the plan names now, including directories created or recreated
        since; stop watching the rest."""
        from watchdog.events import (
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileClosedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
        )

        # Not opens and reads: a build reads every file it hashes.
        kinds: list[type[FileSystemEvent]] = [
            FileCreatedEvent,
            FileModifiedEvent,
            FileClosedEvent,
            FileDeletedEvent,
            FileMovedEvent,
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
        ]
        assert self._observer is not None and self._handler is not None
        for path, (old, recursive, was) in list(self._watches.items()):
            # A directory deleted (and maybe created again) lost its watch.
            if plan.get(path) != recursive or _identity(path) != was:
                self._observer.unschedule(old)
                del self._watches[path]
        for path, recursive in plan.items():
            identity = _identity(path)
            if path in self._watches or identity is None:
                continue
            try:
                watch = self._observer.schedule(
                    self._handler, str(path), recursive=recursive, event_filter=kinds
                )
            except OSError:
                continue  # gone meanwhile: the next batch looks again
            self._watches[path] = (watch, recursive, identity)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
