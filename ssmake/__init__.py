"""ssmake: make for SageMaker training jobs."""

from __future__ import annotations

from ssmake.version import __version__

# Not `from typing import TYPE_CHECKING`: importing typing costs every start-up.
TYPE_CHECKING = False

__all__ = ["Project", "SsmakeError", "__version__"]

if TYPE_CHECKING:
    from ssmake.api import Project
    from ssmake.errors import SsmakeError


def __getattr__(name: str) -> object:
    # Lazy, so that `import ssmake` (and `ssmake --help`) stays instant.
    if name == "Project":
        from ssmake.api import Project

        return Project
    if name == "SsmakeError":
        from ssmake.errors import SsmakeError

        return SsmakeError
    raise AttributeError(f"module 'ssmake' has no attribute {name!r}")
