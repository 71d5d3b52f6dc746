"""simple-sagemaker compatibility: the `ssm` command and `SageMakerProject`."""

from __future__ import annotations

__all__ = ["SageMakerProject"]

TYPE_CHECKING = False  # not typing's: `ssm --help` imports this package

if TYPE_CHECKING:
    from ssmake.compat.project import SageMakerProject


def __getattr__(name: str) -> object:
    # Lazy, so that importing `ssmake.compat.cli` (and `ssm --help`) loads no engine.
    if name == "SageMakerProject":
        from ssmake.compat.project import SageMakerProject

        return SageMakerProject
    raise AttributeError(f"module 'ssmake.compat' has no attribute {name!r}")
