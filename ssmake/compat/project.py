"""simple-sagemaker's Python API, `SageMakerProject`, on the ssmake engine.

A simple-sagemaker script runs on ssmake with its import changed::

    from ssmake.compat import SageMakerProject  # was: from simple_sagemaker.sm_project import ...

    sm_project = SageMakerProject(project_name="my-project")
    sm_project.setDefaultCodeParams(source_dir=None, entry_point="worker.py", dependencies=[])
    sm_project.setDefaultInstanceParams(instance_count=2, max_run_mins=15)
    image_uri = sm_project.buildOrGetImage(instance_type="ml.m5.large")
    sm_project.runTask("task1", image_uri, hyperparameters={"epochs": 2}, input_data_path="data")
    sm_project.downloadResults("task1", "output/task1")

Each `runTask` is a one-task ssmake build, as an `ssm` command is: a task that
already completed with the same fingerprint (code, image, inputs, parameters)
is not run again, unless `force_running` or `clean_state` says so. The backend
is the constructor's `backend`, else `$SSMAKE_BACKEND`, else "sagemaker".
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ssmake.api import Project, default_backend
from ssmake.build.engine import Outcome
from ssmake.compat.params import CodeParams, ImageParams, InstanceParams, image_task, run_task
from ssmake.errors import ConfigError
from ssmake.events import Reporter
from ssmake.project.model import Task
from ssmake.project.names import DISTRIBUTIONS, TASK_OUTPUTS

__all__ = ["CodeParams", "ImageParams", "InstanceParams", "SageMakerProject"]


class SageMakerProject:
    """A project: a series of related tasks whose results live in one store.

    - `project_name`: the project's name, the first part of its keys in the store;
    - `bucket_name`: the S3 bucket of the sagemaker backend (default: the
      account's default SageMaker bucket);
    - `local_mode`: run on this machine (the "local" backend);
    - `backend`: "local" or "sagemaker" (default: `$SSMAKE_BACKEND`, else
      "sagemaker", or "local" with `local_mode`);
    - `store`: where state, inputs and results live, a directory or
      `s3://bucket[/prefix]` (default: `s3://<bucket_name>` on sagemaker,
      `.ssmake` in the working directory on local);
    - `reporter`: receives the build's events (default: printed on stderr).

    `boto3_session`, `role_name` and `smSession` are accepted for compatibility
    and not used: ssmake finds credentials as boto3 does and creates its own role.
    """

    def __init__(
        self,
        project_name: str,
        boto3_session: Any = None,
        role_name: str | None = None,
        bucket_name: str | None = None,
        smSession: Any = None,
        local_mode: bool = False,
        *,
        backend: str | None = None,
        store: str | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        for name, value in (
            ("boto3_session", boto3_session),
            ("role_name", role_name),
            ("smSession", smSession),
        ):
            if value is not None:
                warnings.warn(
                    f"SageMakerProject({name}=...) is not used by ssmake: credentials come "
                    "from boto3's usual places, and the job role is ssmake's own",
                    stacklevel=2,
                )
        self.project_name = project_name
        self.bucket_name = bucket_name
        self.backend = backend or ("local" if local_mode else default_backend())
        if store is None and self.backend == "sagemaker" and bucket_name:
            store = f"s3://{bucket_name.removeprefix('s3://')}"
        self.store = store
        self.root = Path.cwd()
        self.reporter = reporter
        self.defaultCodeParams = CodeParams()
        self.defaultInstanceParams = InstanceParams()
        self.defaultImageParams = ImageParams()
        self.tasks: dict[str, Task] = {}
        self._images: dict[str, ImageParams] = {}

    # -- defaults ------------------------------------------------------------------

    def setDefaultCodeParams(
        self,
        source_dir: str | os.PathLike[str] | None = None,
        entry_point: str | os.PathLike[str] | None = None,
        dependencies: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        """Set the code every task runs, unless `runTask` says otherwise.

        - `source_dir`: a directory with the source code; its structure is kept,
          and a requirements.txt in it is installed before the job runs;
        - `entry_point`: the Python file to run; inside `source_dir` when that is
          given (relative to it), else any path;
        - `dependencies`: more directories (or files), packed beside the entry point.
        """
        self.defaultCodeParams = CodeParams(
            _text(source_dir), _text(entry_point), tuple(str(d) for d in dependencies)
        )

    def setDefaultInstanceParams(
        self,
        instance_type: str = "ml.m5.large",
        instance_count: int = 1,
        volume_size: int = 30,
        use_spot: bool = True,
        max_run_mins: int = 1440,
        max_wait_mins: int = 0,
        *,
        use_spot_instances: bool | None = None,
    ) -> None:
        """Set the instances every task runs on, unless `runTask` says otherwise.

        `instance_type` and `instance_count` choose the machines; `volume_size`
        is each one's disk in GB; `use_spot` (also spelled `use_spot_instances`)
        uses Managed Spot instances, waiting for them up to `max_wait_mins` (0:
        as long as `max_run_mins`); a job runs at most `max_run_mins`.
        """
        spot = use_spot if use_spot_instances is None else use_spot_instances
        self.defaultInstanceParams = InstanceParams(
            instance_type, instance_count, volume_size, spot, max_run_mins, max_wait_mins
        )

    def setDefaultImageParams(
        self,
        aws_repo_name: str | None = None,
        repo_name: str | None = None,
        img_tag: str = "latest",
        docker_file_path_or_content: str | os.PathLike[str] | None = None,
        framework: str = "pytorch",
        framework_version: str | None = None,
        python_version: str | None = None,
        *,
        image_tag: str | None = None,
        py_version: str | None = None,
    ) -> None:
        """Set the image every task runs in.

        The framework image (`framework` "pytorch" or "tensorflow", with
        `framework_version` and `python_version`) is used as is, or extended by
        a Dockerfile: `docker_file_path_or_content` is a directory holding one,
        or the Dockerfile's text, whose `FROM __BASE_IMAGE__` names the
        framework image. A built image goes to the ECR repository
        `aws_repo_name` (locally `repo_name`) with tag `img_tag` (also spelled
        `image_tag`). `py_version` is another name for `python_version`.
        """
        self.defaultImageParams = ImageParams(
            aws_repo_name,
            repo_name,
            image_tag or img_tag,
            _text(docker_file_path_or_content),
            framework,
            framework_version,
            py_version or python_version,
        )

    # -- images and tasks -----------------------------------------------------------

    def buildOrGetImage(self, instance_type: str | None = None, **image_params: Any) -> str:
        """The URI of the image for tasks running on `instance_type`, built first
        when the image params name a Dockerfile whose image is not built yet.

        Keyword arguments override the default image params for this image. Pass
        the result to `runTask`, which runs the task in the image of these params.
        On the local backend, which runs jobs on this machine's Python, the
        result is a `local/<framework>` label.
        """
        params = self.defaultImageParams._replace(**image_params)
        task = image_task(
            params, instance_type or self.defaultInstanceParams.instance_type, self.root
        )
        uri = self._project([task]).image(task.name)
        self._images[uri] = params
        return uri

    def runTask(
        self,
        task_name: str,
        image_uri: str | None = None,
        hyperparameters: Mapping[str, object] | None = None,
        input_data_path: str | os.PathLike[str] | None = None,
        clean_state: bool = False,
        force_running: bool = False,
        tags: Mapping[str, str] | None = None,
        metric_definitions: Mapping[str, str] | None = None,
        enable_sagemaker_metrics: bool = False,
        distribution: str = "FullyReplicated",
        additional_inputs: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> tuple[Outcome, str | None]:
        """Run the task `task_name`, unless it already completed with the same inputs.

        - `image_uri`: from `buildOrGetImage` (the image params it was built
          from apply), or any image URI (default: the default image params);
        - `hyperparameters`: passed to the job as `--name value` arguments;
        - `input_data_path`: a local directory (synced to the store) or an S3
          URI, the worker's `args.input_data`, split among the instances by
          `distribution` ("FullyReplicated" or "ShardedByS3Key");
        - `additional_inputs`: more inputs by name (`args.input_<name>`): a
          `getInputConfig(...)` of another task, an S3 URI or a local path;
        - `clean_state`: delete the task's state first, and run it again;
        - `force_running`: run it again even when it already completed;
        - `tags`, `metric_definitions` ({name: regex}) and
          `enable_sagemaker_metrics`: as on SageMaker;
        - keyword arguments override the default code and instance params
          (`entry_point=...`, `instance_count=...`).

        Returns the build's `Outcome` and the job that holds the result. Raises
        `ssmake.api.BuildFailed` when the job fails.
        """
        distribution = overrides.pop("input_distribution", distribution)
        code, instance, image = self._run_params(task_name, image_uri, overrides)
        task = run_task(
            task_name,
            code,
            instance,
            image,
            self.root,
            hyperparameters=dict(hyperparameters or {}),
            input_data_path=input_data_path,
            distribution=distribution,
            additional_inputs=dict(additional_inputs or {}),
            tags=dict(tags or {}),
            metrics=dict(metric_definitions or {}),
            enable_metrics=enable_sagemaker_metrics,
        )
        self.tasks[task_name] = task
        project = self._project([task])
        if clean_state:
            project.clean_state(task_name)
        (outcome,) = project.build([task_name], force=force_running or clean_state)
        return outcome, outcome.job

    def getInputConfig(
        self,
        task_name: str,
        output_type: str,
        distribution: str = "FullyReplicated",
        subdir: str = "",
    ) -> dict[str, str]:
        """An input for `runTask(additional_inputs=...)`: an output of another task.

        `output_type` is "model" (its model.tar.gz), "output" (its
        output.tar.gz) or "state" (its state files); `distribution` is
        "FullyReplicated" or "ShardedByS3Key". The model and output need the
        task to have completed. The returned table is the Ssmfile's
        `{ task = ..., output = ..., distribution = ... }`.
        """
        if output_type not in TASK_OUTPUTS:
            raise ConfigError(
                f"getInputConfig({task_name!r}, {output_type!r}): the output type is one of "
                + ", ".join(TASK_OUTPUTS)
            )
        if distribution not in DISTRIBUTIONS:
            raise ConfigError(
                f"getInputConfig({task_name!r}): distribution {distribution!r} is not one of "
                + ", ".join(DISTRIBUTIONS)
            )
        if subdir:
            raise ConfigError(
                f"getInputConfig({task_name!r}, subdir={subdir!r}): ssmake delivers a task's "
                "output whole; read the subdirectory in the worker instead"
            )
        if output_type != "state" and self._project([]).result(task_name) is None:
            raise ConfigError(
                f"task {task_name} of project {self.project_name} isn't completed: "
                f"run it before using its {output_type}"
            )
        return {"task": task_name, "output": output_type, "distribution": distribution}

    def downloadResults(
        self,
        task_name: str,
        local_path: str | os.PathLike[str],
        logs: bool = True,
        state: bool = True,
        model: bool = True,
        output: bool = True,
        source: bool = False,
    ) -> list[Path]:
        """Download the current results of `task_name` into `local_path`.

        Each kind asked for goes to its own directory: `model/` and `output/`
        (extracted), `state/`, and `logs/logs<i>` (one file per instance).
        Returns the directories written.
        """
        if source:
            raise ConfigError(
                "downloadResults(source=True): ssmake does not download the code back; "
                "it is the code in your working tree at the job's fingerprint"
            )
        wanted = {"model": model, "output": output, "state": state, "logs": logs}
        kinds = [kind for kind, yes in wanted.items() if yes]
        return self._project([]).download(task_name, local_path, kinds)

    def cleanState(self, task_name: str) -> int:
        """Delete the state of `task_name`; returns how many files were removed."""
        return self._project([]).clean_state(task_name)

    # -- plumbing ---------------------------------------------------------------------

    def _project(self, tasks: list[Task]) -> Project:
        return Project.from_tasks(
            self.project_name,
            tasks,
            root=self.root,
            backend=self.backend,
            store=self.store,
            reporter=self.reporter,
        )

    def _run_params(
        self, name: str, image_uri: str | None, overrides: dict[str, Any]
    ) -> tuple[CodeParams, InstanceParams, ImageParams | str]:
        """The default params with a `runTask`'s overrides, and its image: the params
        `image_uri` was built from, or the URI itself when `buildOrGetImage` did not
        make it."""
        if "use_spot" in overrides:
            overrides["use_spot_instances"] = overrides.pop("use_spot")
        code_keys, instance_keys = set(CodeParams._fields), set(InstanceParams._fields)
        unknown = sorted(set(overrides) - code_keys - instance_keys)
        if unknown:
            known = ", ".join(sorted(code_keys | instance_keys))
            raise ConfigError(f"runTask({name!r}): unknown argument {unknown[0]!r}; known: {known}")
        code = self.defaultCodeParams._replace(
            **{k: v for k, v in overrides.items() if k in code_keys}
        )
        instance = self.defaultInstanceParams._replace(
            **{k: v for k, v in overrides.items() if k in instance_keys}
        )
        image: ImageParams | str
        if image_uri is not None and image_uri not in self._images:
            image = image_uri
        else:
            image = self._images.get(image_uri or "", self.defaultImageParams)
        return code, instance, image


def _text(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else str(value)
