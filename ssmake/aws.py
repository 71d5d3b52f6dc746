"""boto3 clients configured for ssmake, and AWS errors translated for users.

Clients come from boto3's usual configuration chain (profiles, `AWS_REGION`,
`AWS_ENDPOINT_URL`, SSO, instance roles) and are cached per service, region and
AWS_* environment, because building one parses the service model (tens of ms)
and the executor opens a store per URI. botocore is imported only here and only
when a client is made, so `ssmake --help` never loads it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ssmake.errors import EXIT_USAGE, BackendError, SsmakeError

EventHandler = Callable[..., Any]
T = TypeVar("T")

# Bulk transfers retry at a steady pace; the control plane (DescribeTrainingJob,
# GetLogEvents, IAM) has low rate limits, where adaptive mode's client-side
# token bucket keeps concurrent polls from failing.
_RETRIES = {
    "s3": {"mode": "standard", "total_max_attempts": 8},
}
_DEFAULT_RETRIES = {"mode": "adaptive", "total_max_attempts": 10}
S3_MAX_POOL_CONNECTIONS = 64

_REGION_HELP = (
    'set region = "..." under [project] in Ssmfile.toml, export AWS_REGION, '
    "or run `aws configure set region REGION`"
)

_lock = threading.Lock()
_sessions: dict[tuple[object, ...], tuple[Any, Any]] = {}
_clients: dict[tuple[object, ...], Any] = {}
_hooks: list[tuple[str, EventHandler]] = []


def _environment_key() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))


def add_event_hook(event_name: str, handler: EventHandler) -> Callable[[], None]:
    """Register a botocore event handler on every client ssmake creates from now on
    (for instance `after-call.sagemaker.CreateTrainingJob`); returns its remover."""
    with _lock:
        _hooks.append((event_name, handler))
        _clients.clear()
        _sessions.clear()

    def remove() -> None:
        with _lock:
            if (event_name, handler) in _hooks:
                _hooks.remove((event_name, handler))
            _clients.clear()
            _sessions.clear()

    return remove


def _session(region: str | None, env: tuple[tuple[str, str], ...]) -> tuple[Any, Any]:
    """A boto3 session and the botocore session under it."""
    key = (region, env)
    pair = _sessions.get(key)
    if pair is None:
        import boto3
        import botocore.session

        core = botocore.session.get_session()
        for event_name, handler in _hooks:
            core.register(event_name, handler)
        # boto3 reads AWS_DEFAULT_REGION only; AWS_REGION (the CLI's and the SDKs'
        # newer name, which the README promises) wins over it, as in the AWS CLI.
        name = region or os.environ.get("AWS_REGION") or None
        pair = (boto3.session.Session(botocore_session=core, region_name=name), core)
        _sessions[key] = pair
    return pair


def _config(core: Any, service: str) -> Any:
    from botocore.config import Config

    scoped = core.get_scoped_config()
    kwargs: dict[str, Any] = {"user_agent_extra": "ssmake"}
    # The user's own retry settings (env or profile) win over ours.
    if not (
        os.environ.get("AWS_RETRY_MODE")
        or os.environ.get("AWS_MAX_ATTEMPTS")
        or "retry_mode" in scoped
        or "max_attempts" in scoped
    ):
        kwargs["retries"] = dict(_RETRIES.get(service, _DEFAULT_RETRIES))
    if service == "s3":
        kwargs["max_pool_connections"] = S3_MAX_POOL_CONNECTIONS
    return Config(**kwargs)


def client(
    service: str, *, region: str | None = None, kind: type[SsmakeError] = BackendError
) -> Any:
    """A boto3 client for `service`, shared between threads (clients are thread-safe);
    a broken configuration raises `kind`."""
    env = _environment_key()
    key = (service, region, env)
    with _lock:
        cached = _clients.get(key)
        if cached is not None:
            return cached
        with translated(f"cannot set up the AWS {service} client", kind):
            session, core = _session(region, env)
            if service != "s3" and not session.region_name:
                raise kind(f"no AWS region is configured for {service}: {_REGION_HELP}")
            made = session.client(service, config=_config(core, service))
        _clients[key] = made
        return made


def retry_reading(client: Any, read: Callable[[], T]) -> T:
    """`read()`: a request and the reading of its response's body, made again (with
    backoff, up to the client's attempts) when the body breaks off midway. botocore
    retries a request whose answer does not come, not one whose body is cut short."""
    from botocore import exceptions as bx

    retries = client.meta.config.retries or {}
    attempts = max(1, int(retries.get("total_max_attempts", 1)))
    attempt = 1
    while True:
        try:
            return read()
        except (bx.ResponseStreamingError, bx.IncompleteReadError, bx.ReadTimeoutError):
            if attempt >= attempts:
                raise
        # As botocore's standard mode: full jitter, doubling, capped at 20 s.
        time.sleep(random.random() * min(20.0, 2.0 ** (attempt - 1)))
        attempt += 1


def resolve_region(region: str | None) -> str:
    """`region`, or the region boto3's configuration chain resolves; error when none."""
    if region:
        return region
    with _lock, translated("cannot read the AWS configuration"):
        resolved = _session(None, _environment_key())[0].region_name
    if not resolved:
        raise BackendError(f"no AWS region is configured: {_REGION_HELP}")
    return str(resolved)


def account_id(region: str | None = None) -> str:
    """The AWS account of the credentials in use."""
    with translated("cannot find the AWS account of your credentials (sts:GetCallerIdentity)"):
        return str(client("sts", region=region).get_caller_identity()["Account"])


# -- errors ------------------------------------------------------------------

_CREDENTIALS_HELP = (
    "configure credentials with `aws configure` (or `aws sso login`), set AWS_PROFILE, "
    "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)
_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "ProvisionedThroughputExceededException",
}
_QUOTA = {"ResourceLimitExceeded", "LimitExceeded", "LimitExceededException"}
_BAD_CREDENTIALS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "RequestExpired",
}
_DENIED = {"AccessDenied", "AccessDeniedException", "403", "Forbidden", "UnauthorizedOperation"}


def translate(
    error: BaseException, what: str, kind: type[SsmakeError] = BackendError
) -> SsmakeError | None:
    """The user-facing error for a botocore exception (None for anything else: a bug)."""
    from botocore import exceptions as bx

    if isinstance(
        error,
        bx.NoCredentialsError
        | bx.PartialCredentialsError
        | bx.CredentialRetrievalError
        | bx.TokenRetrievalError
        | bx.UnauthorizedSSOTokenError
        | bx.SSOTokenLoadError,
    ):
        message = f"{what}: no usable AWS credentials ({error}); {_CREDENTIALS_HELP}"
        return kind(message, EXIT_USAGE, setup=True)
    if isinstance(error, bx.ProfileNotFound):
        return kind(
            f"{what}: {error}; check AWS_PROFILE and the profiles in ~/.aws/config "
            "(`aws configure list-profiles`)",
            EXIT_USAGE,
            setup=True,
        )
    if isinstance(error, bx.NoRegionError):
        return kind(f"{what}: no AWS region is configured: {_REGION_HELP}", EXIT_USAGE, setup=True)
    if isinstance(
        error,
        bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ConnectionClosedError,
    ):
        url = getattr(error, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
        return kind(
            f"{what}: cannot reach {url}; check the network connection, the region, "
            "and AWS_ENDPOINT_URL if it is set"
        )
    if isinstance(error, bx.ReadTimeoutError):
        return kind(f"{what}: AWS did not answer in time ({error}); try again")
    if isinstance(error, bx.ParamValidationError):
        return kind(f"{what}: the request is invalid: {error}")
    if isinstance(error, bx.ClientError):
        return kind(_client_error_message(error, what))
    if isinstance(error, bx.BotoCoreError):
        return kind(f"{what}: {error}")
    return None


def _client_error_message(error: Any, what: str) -> str:
    info = error.response.get("Error", {})
    code = str(info.get("Code", "")) or "unknown error"
    message = str(info.get("Message", "")).strip()
    detail = f" ({message})" if message else ""
    operation = getattr(error, "operation_name", "the request")
    if code in ("NoSuchBucket",) or (code == "404" and operation == "HeadBucket"):
        bucket = info.get("BucketName") or "the bucket"
        return (
            f"{what}: bucket {bucket} does not exist; create it (`aws s3 mb s3://{bucket}`), "
            "fix `store` in Ssmfile.toml, or leave `store` unset on the sagemaker backend "
            "to use the account's default bucket"
        )
    if code in _BAD_CREDENTIALS:
        return (
            f"{what}: AWS rejected the credentials ({code}){detail}; they are wrong or "
            f"expired: {_CREDENTIALS_HELP}"
        )
    if code in _DENIED:
        return (
            f"{what}: access denied to {operation}{detail}; the AWS identity in use lacks "
            "this permission: use a profile that has it (AWS_PROFILE) or ask your "
            "administrator to grant it"
        )
    if code in _THROTTLING:
        return (
            f"{what}: AWS is throttling requests ({code}) even after retries; try again "
            "later or run fewer jobs at once (-j)"
        )
    if code in _QUOTA:
        return (
            f"{what}: an AWS quota is exceeded ({code}){detail}; request an increase in "
            "the Service Quotas console, use another instance type, or wait for running "
            "jobs to finish"
        )
    return f"{what}: {operation} failed with {code}{detail}"


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


@contextmanager
def translated(what: str, kind: type[SsmakeError] = BackendError) -> Iterator[None]:
    """Turn botocore exceptions raised inside the block into `kind` errors saying `what`
    failed and what to do; our own errors and bugs pass through unchanged."""
    try:
        yield
    except SsmakeError:
        raise
    except Exception as e:
        mapped = translate(e, what, kind)
        if mapped is None:
            raise
        raise mapped from e
