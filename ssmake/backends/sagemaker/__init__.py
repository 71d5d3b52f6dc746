"""The SageMaker backend: training jobs (`jobs`), their CloudWatch logs (`logs`), and
the execution role and buckets a first run creates (`roles`)."""
