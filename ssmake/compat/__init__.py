"""simple-sagemaker compatibility: the `ssm` command and `SageMakerProject`."""

from ssmake.compat.project import SageMakerProject

__all__ = ["SageMakerProject"]
