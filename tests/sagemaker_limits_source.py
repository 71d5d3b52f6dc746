"""Where ssmake/project/sagemaker_limits.py comes from: the limits of CreateTrainingJob's
request in botocore's service model for SageMaker. Run this file to regenerate the
module after upgrading botocore; test_limits.py fails while the two differ.

    PYTHONPATH=. python tests/sagemaker_limits_source.py
    ruff format ssmake/project/sagemaker_limits.py
"""

from __future__ import annotations

import pprint
from pathlib import Path
from typing import Any

# The request's members ssmake fills from an Ssmfile: a name for each, and its path
# through CreateTrainingJob's input shape ("key" / "value" of a map, "member" of a list).
PATHS: dict[str, tuple[str, ...]] = {
    "job_name": ("TrainingJobName",),
    "hyperparameters": ("HyperParameters",),
    "hyperparameter_key": ("HyperParameters", "key"),
    "hyperparameter_value": ("HyperParameters", "value"),
    "tags": ("Tags",),
    "tag_key": ("Tags", "member", "Key"),
    "tag_value": ("Tags", "member", "Value"),
    "environment": ("Environment",),
    "environment_key": ("Environment", "key"),
    "environment_value": ("Environment", "value"),
    "metrics": ("AlgorithmSpecification", "MetricDefinitions"),
    "metric_name": ("AlgorithmSpecification", "MetricDefinitions", "member", "Name"),
    "metric_regex": ("AlgorithmSpecification", "MetricDefinitions", "member", "Regex"),
    "instance_count": ("ResourceConfig", "InstanceCount"),
    "volume_size": ("ResourceConfig", "VolumeSizeInGB"),
    "max_runtime_seconds": ("StoppingCondition", "MaxRuntimeInSeconds"),
    "max_wait_seconds": ("StoppingCondition", "MaxWaitTimeInSeconds"),
}

HEADER = '''"""SageMaker's limits on the CreateTrainingJob request, generated from botocore's
service model by tests/sagemaker_limits_source.py (do not edit; run that file to
regenerate). For each request member ssmake fills: its `min` and `max` (a length
for strings, lists and maps; a value for integers) and `pattern`, where the model
gives them. botocore itself checks only `min`: the load checks them all
(project/limits.py), so that a mistake is found before anything is launched."""

'''


def limits_from_botocore() -> dict[str, dict[str, Any]]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    request = model.operation_model("CreateTrainingJob").input_shape
    limits: dict[str, dict[str, Any]] = {}
    for name, path in PATHS.items():
        shape: Any = request
        for step in path:
            shape = (
                getattr(shape, step) if step in ("key", "value", "member") else shape.members[step]
            )
        limits[name] = {
            k: shape.metadata[k] for k in ("min", "max", "pattern") if k in shape.metadata
        }
    return limits


def module_text() -> str:
    table = pprint.pformat(limits_from_botocore(), width=90, sort_dicts=False)
    return f"{HEADER}from typing import Any\n\nLIMITS: dict[str, dict[str, Any]] = {table}\n"


if __name__ == "__main__":
    target = Path(__file__).parent.parent / "ssmake" / "project" / "sagemaker_limits.py"
    target.write_text(module_text())
    print(f"wrote {target}")
