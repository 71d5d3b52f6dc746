"""What a first SageMaker run needs in the account, created and announced.

The execution role trusts sagemaker.amazonaws.com and may write CloudWatch Logs
and read ECR; it is given access to each bucket its jobs use, one inline policy
per bucket. The account's default bucket is `sagemaker-<region>-<account>`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ssmake import aws
from ssmake.errors import StoreError

NoticeFn = Callable[[str], None]

ROLE_NAME = "ssmake-sagemaker-execution"
BASE_POLICY = "ssmake-sagemaker"
# A new role takes a few seconds to become assumable by SageMaker.
ROLE_PROPAGATION_SECONDS = 60.0

_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
_BASE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ],
            "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/*",
        },
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage",
            ],
            "Resource": "*",
        },
    ],
}


def print_notice(message: str) -> None:
    print(f"ssmake: {message}", file=sys.stderr)


def _bucket_policy(bucket: str, write: bool) -> dict[str, Any]:
    actions = ["s3:GetObject"]
    if write:
        actions += ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {"Effect": "Allow", "Action": actions, "Resource": f"arn:aws:s3:::{bucket}/*"},
        ],
    }


def ensure_bucket(bucket: str, region: str | None, *, on_notice: NoticeFn = print_notice) -> bool:
    """Create `bucket` in `region` unless it exists; True when it was created."""
    s3 = aws.client("s3", region=region)
    with aws.translated(f"cannot check bucket s3://{bucket}", StoreError):
        try:
            s3.head_bucket(Bucket=bucket)
            return False
        except Exception as e:
            if aws.error_code(e) not in ("404", "NoSuchBucket"):
                if aws.error_code(e) in ("403", "AccessDenied"):
                    raise StoreError(
                        f"bucket s3://{bucket} exists but belongs to another account or "
                        "denies access to yours; name another bucket in `store`"
                    ) from None
                raise
    region = aws.resolve_region(region)
    with aws.translated(f"cannot create bucket s3://{bucket} in {region}", StoreError):
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":  # us-east-1 rejects its own name as a constraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(**kwargs)
        except Exception as e:
            if aws.error_code(e) == "BucketAlreadyOwnedByYou":
                return False
            raise
    on_notice(f"created bucket s3://{bucket} in {region}")
    return True


def default_bucket_url(region: str | None, *, on_notice: NoticeFn = print_notice) -> str:
    """`s3://sagemaker-<region>-<account>`, SageMaker's default bucket, created if missing."""
    region = aws.resolve_region(region)
    bucket = f"sagemaker-{region}-{aws.account_id(region)}"
    ensure_bucket(bucket, region, on_notice=on_notice)
    return f"s3://{bucket}"


class ExecutionRole:
    """The role jobs run as: `role` (a name or an ARN) as given, else ssmake's own,
    created when missing and given access to the store's `bucket`."""

    def __init__(
        self, iam: Callable[[], Any], role: str | None, bucket: str | None, on_notice: NoticeFn
    ) -> None:
        self._iam = iam
        self.role = role
        self.bucket = bucket
        self.on_notice = on_notice
        self._arn: str | None = None
        self._created_at: float | None = None
        self._granted: set[str] = set()
        self._lock = threading.Lock()

    def arn(self) -> str:
        with self._lock:
            if self._arn is None:
                self._arn = self._resolve()
            return self._arn

    def grant_reading(self, buckets: Iterable[str]) -> None:
        """Let ssmake's own role, once resolved, read `buckets` besides the store's.
        (A role the user names has the access its owner gave it.)"""
        if self.role is None and self._arn is not None:
            with self._lock:
                for bucket in sorted(set(buckets) - {self.bucket}):
                    self._grant(bucket, write=False)

    def propagating(self, error: Exception) -> bool:
        """Whether `error` says SageMaker cannot assume a role created moments ago."""
        fresh = self._created_at
        return (
            aws.error_code(error) == "ValidationException"
            and "assume" in str(error).lower()
            and fresh is not None
            and time.monotonic() - fresh < ROLE_PROPAGATION_SECONDS
        )

    def _resolve(self) -> str:
        if self.role and self.role.startswith("arn:"):
            return self.role
        iam = self._iam()
        name = self.role or ROLE_NAME
        with aws.translated(f"cannot read IAM role {name}"):
            try:
                arn = str(iam.get_role(RoleName=name)["Role"]["Arn"])
            except Exception as e:
                if aws.error_code(e) != "NoSuchEntity" or self.role:
                    raise
                arn = self._create(iam)
        if self.role is None and self.bucket is not None:
            self._grant(self.bucket, write=True)
        return arn

    def _create(self, iam: Any) -> str:
        with aws.translated(f"cannot create IAM role {ROLE_NAME}"):
            try:
                role = iam.create_role(
                    RoleName=ROLE_NAME,
                    AssumeRolePolicyDocument=json.dumps(_TRUST),
                    Description="Execution role for training jobs launched by ssmake",
                )["Role"]
            except Exception as e:
                if aws.error_code(e) == "EntityAlreadyExists":  # another ssmake won the race
                    return str(iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"])
                raise
            iam.put_role_policy(
                RoleName=ROLE_NAME, PolicyName=BASE_POLICY, PolicyDocument=json.dumps(_BASE)
            )
        self._created_at = time.monotonic()
        self.on_notice(
            f"created IAM role {ROLE_NAME} for SageMaker jobs (trusts sagemaker.amazonaws.com; "
            "CloudWatch Logs, ECR read)"
        )
        return str(role["Arn"])

    def _grant(self, bucket: str, *, write: bool) -> None:
        """Give the role access to a bucket its jobs use (an inline policy per bucket)."""
        policy = f"ssmake-s3-{bucket}" if write else f"ssmake-s3-read-{bucket}"
        if policy in self._granted or f"ssmake-s3-{bucket}" in self._granted:
            return
        iam = self._iam()
        with aws.translated(f"cannot give IAM role {ROLE_NAME} access to s3://{bucket}"):
            try:
                iam.get_role_policy(RoleName=ROLE_NAME, PolicyName=policy)
            except Exception as e:
                if aws.error_code(e) != "NoSuchEntity":
                    raise
                iam.put_role_policy(
                    RoleName=ROLE_NAME,
                    PolicyName=policy,
                    PolicyDocument=json.dumps(_bucket_policy(bucket, write)),
                )
                access = "read-write" if write else "read"
                self.on_notice(f"gave IAM role {ROLE_NAME} {access} access to s3://{bucket}")
        self._granted.add(policy)
