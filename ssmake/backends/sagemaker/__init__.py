"""The SageMaker backend: training jobs, their logs, and the IAM role."""
