"""The local backend: SageMaker's container contract as processes on this machine."""
