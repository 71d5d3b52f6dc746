"""Following a training job's CloudWatch logs: one stream per instance, each read
on from where the last poll stopped."""

from __future__ import annotations

from collections import deque
from typing import Any

from ssmake import aws
from ssmake.backends import LOG_TAIL_LINES, LogFn

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def _host(stream: str, job: str) -> str:
    # Streams are named `<job>/algo-<i>-<epoch seconds>`.
    return stream[len(job) + 1 :].rsplit("-", 1)[0]


class LogFollower:
    """Reads a job's CloudWatch log streams from where the last poll stopped."""

    def __init__(self, logs: Any, job: str) -> None:
        self.logs = logs
        self.job = job
        self.tokens: dict[str, str] = {}
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    def poll(self, on_log: LogFn) -> None:
        """Pass every line written since the last poll to `on_log(host, line)`."""
        try:
            streams = self._streams()
        except Exception as e:
            if aws.error_code(e) == "ResourceNotFoundException":
                return  # no log group yet: the job has not started
            raise
        for stream in streams:
            host = _host(stream, self.job)
            while True:
                kwargs: dict[str, Any] = {
                    "logGroupName": LOG_GROUP,
                    "logStreamName": stream,
                    "startFromHead": True,
                }
                if stream in self.tokens:
                    kwargs["nextToken"] = self.tokens[stream]
                response = self.logs.get_log_events(**kwargs)
                for event in response.get("events", []):
                    line = str(event["message"]).rstrip("\n")
                    self.tail.append(line)
                    on_log(host, line)
                token = response.get("nextForwardToken")
                if not token or token == self.tokens.get(stream):
                    break
                self.tokens[stream] = token

    def _streams(self) -> list[str]:
        names: list[str] = []
        pages = self.logs.get_paginator("describe_log_streams").paginate(
            logGroupName=LOG_GROUP, logStreamNamePrefix=self.job + "/"
        )
        for page in pages:
            names.extend(s["logStreamName"] for s in page.get("logStreams", []))
        return sorted(names)
