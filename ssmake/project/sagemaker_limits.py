"""SageMaker's limits on the CreateTrainingJob request, generated from botocore's
service model by tests/sagemaker_limits_source.py (do not edit; run that file to
regenerate). For each request member ssmake fills: its `min` and `max` (a length
for strings, lists and maps; a value for integers) and `pattern`, where the model
gives them. botocore itself checks only `min`: the load checks them all
(project/limits.py), so that a mistake is found before anything is launched."""

from typing import Any

LIMITS: dict[str, dict[str, Any]] = {
    "job_name": {"min": 1, "max": 63, "pattern": "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"},
    "hyperparameters": {"min": 0, "max": 100},
    "hyperparameter_key": {"min": 0, "max": 256, "pattern": ".*"},
    "hyperparameter_value": {"min": 0, "max": 2500, "pattern": ".*"},
    "tags": {"min": 0, "max": 50},
    "tag_key": {"min": 1, "max": 128, "pattern": "([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)"},
    "tag_value": {"min": 0, "max": 256, "pattern": "([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)"},
    "environment": {"min": 0, "max": 100},
    "environment_key": {"min": 0, "max": 512, "pattern": "[a-zA-Z_][a-zA-Z0-9_]*"},
    "environment_value": {"min": 0, "max": 512, "pattern": "[\\S\\s]*"},
    "metrics": {"min": 0, "max": 40},
    "metric_name": {"min": 1, "max": 255, "pattern": ".+"},
    "metric_regex": {"min": 1, "max": 500, "pattern": ".+"},
    "instance_count": {"min": 0},
    "volume_size": {"min": 0},
    "max_runtime_seconds": {"min": 1},
    "max_wait_seconds": {"min": 1},
}
