"""Where built images go: an ECR repository (the default), or a plain registry.

`image.repo` names the repository: a bare name (`trainer`) is an ECR repository
of the project's account and region, created when missing; a name with an ECR
host is that ECR repository; any other host (`localhost:5000/trainer`) is a
Docker registry spoken to over its HTTP API (no repository to create). A
registry answers one question before a push: which image a tag names now.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ssmake import aws
from ssmake.errors import ImageError

NoticeFn = Callable[[str], None]

ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)
_MANIFESTS = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
_ACCEPT = {"Accept": _MANIFESTS}


@dataclass(frozen=True)
class Login:
    """Credentials for `docker login`."""

    registry: str
    username: str
    password: str


class Registry(Protocol):
    def repository(self, name: str) -> str:
        """The repository's address (`host/name`), creating the repository if needed."""
        ...

    def digest(self, name: str, tag: str) -> str | None:
        """The digest of the image `tag` names in the repository, None when it is absent."""
        ...

    def add_tag(self, name: str, tag: str, new_tag: str) -> None:
        """Make `new_tag` name the image `tag` names (no docker needed)."""
        ...

    def login(self) -> Login | None:
        """Credentials to push with, or None when docker's own configuration has them."""
        ...


def split_repository(repo: str) -> tuple[str | None, str]:
    """("host[:port]", "path") of a repository reference; host None for a bare name."""
    first, sep, rest = repo.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, repo


def ecr_host(host: str) -> tuple[str, str] | None:
    """(account, region) of an ECR registry host, None for any other host."""
    found = ECR_HOST.match(host)
    return (found["account"], found["region"]) if found else None


class EcrRegistry:
    """An ECR registry: repositories created on demand, tags read with DescribeImages."""

    def __init__(
        self,
        region: str | None,
        account: str | None = None,
        *,
        on_notice: NoticeFn = lambda message: None,
    ) -> None:
        self.region = region
        self.account = account
        self.on_notice = on_notice

    def _ecr(self) -> Any:
        return aws.client("ecr", region=self.region)

    def _ids(self) -> dict[str, str]:
        return {"registryId": self.account} if self.account else {}

    def repository(self, name: str) -> str:
        ecr = self._ecr()
        with aws.translated(f"cannot read ECR repository {name}", ImageError):
            try:
                found = ecr.describe_repositories(repositoryNames=[name], **self._ids())
                return str(found["repositories"][0]["repositoryUri"])
            except Exception as e:
                if aws.error_code(e) != "RepositoryNotFoundException":
                    raise
        with aws.translated(f"cannot create ECR repository {name}", ImageError):
            try:
                made = ecr.create_repository(repositoryName=name, **self._ids())
            except Exception as e:
                if aws.error_code(e) != "RepositoryAlreadyExistsException":
                    raise
                found = ecr.describe_repositories(repositoryNames=[name], **self._ids())
                return str(found["repositories"][0]["repositoryUri"])
        uri = str(made["repository"]["repositoryUri"])
        self.on_notice(f"created ECR repository {uri}")
        return uri

    def digest(self, name: str, tag: str) -> str | None:
        with aws.translated(f"cannot read the images of ECR repository {name}", ImageError):
            try:
                found = self._ecr().describe_images(
                    repositoryName=name, imageIds=[{"imageTag": tag}], **self._ids()
                )
            except Exception as e:
                if aws.error_code(e) in ("ImageNotFoundException", "RepositoryNotFoundException"):
                    return None
                raise
        details = found.get("imageDetails") or []
        return str(details[0]["imageDigest"]) if details else None

    def add_tag(self, name: str, tag: str, new_tag: str) -> None:
        ecr = self._ecr()
        with aws.translated(f"cannot tag {name}:{tag} as {new_tag} in ECR", ImageError):
            found = ecr.batch_get_image(
                repositoryName=name, imageIds=[{"imageTag": tag}], **self._ids()
            )
            manifest = found["images"][0]["imageManifest"]
            try:
                ecr.put_image(
                    repositoryName=name, imageManifest=manifest, imageTag=new_tag, **self._ids()
                )
            except Exception as e:
                if aws.error_code(e) != "ImageAlreadyExistsException":
                    raise

    def login(self) -> Login:
        ids = {"registryIds": [self.account]} if self.account else {}
        with aws.translated(
            "cannot get an ECR login token (ecr:GetAuthorizationToken)", ImageError
        ):
            data = self._ecr().get_authorization_token(**ids)["authorizationData"][0]
        import base64  # only for ECR's token

        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return Login(str(data["proxyEndpoint"]), username, password)


class DockerRegistry:
    """A registry speaking the Docker Registry HTTP API v2 (such as `registry:2`)."""

    def __init__(self, host: str) -> None:
        self.host = host
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        # docker itself talks plain HTTP to a registry on the loopback interface
        local = name in ("localhost", "[::1]") or name.startswith("127.")
        self.base = f"{'http' if local else 'https'}://{host}"

    def repository(self, name: str) -> str:
        return f"{self.host}/{name}"

    def _call(
        self,
        url: str,
        *,
        headers: dict[str, str],
        method: str = "GET",
        data: bytes | None = None,
    ) -> tuple[dict[str, str], bytes] | None:
        """Headers and body of the answer, None for 401/403/404."""
        # Imported here: http.client and ssl cost every build's start-up otherwise,
        # and only a build that pushes to a plain registry talks to one.
        import urllib.error
        import urllib.request

        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as e:
            if e.code in (401, 403, 404):
                return None
            raise ImageError(
                f"registry {self.host} answered {e.code} to {request.get_method()} "
                f"{request.full_url}"
            ) from e
        except OSError as e:
            raise ImageError(
                f"cannot reach the registry {self.host} ({e}); is it running, and is "
                "image.repo right?"
            ) from e

    def digest(self, name: str, tag: str) -> str | None:
        url = f"{self.base}/v2/{name}/manifests/{tag}"
        answer = self._call(url, method="HEAD", headers=_ACCEPT)
        if answer is None:
            return None  # absent, or not ours to see: a push settles it
        return answer[0].get("Docker-Content-Digest") or f"present:{tag}"

    def add_tag(self, name: str, tag: str, new_tag: str) -> None:
        url = f"{self.base}/v2/{name}/manifests/"
        answer = self._call(url + tag, headers=_ACCEPT)
        if answer is None:
            raise ImageError(f"cannot read {self.host}/{name}:{tag} to tag it {new_tag}")
        headers, manifest = answer
        put = self._call(
            url + new_tag,
            data=manifest,
            method="PUT",
            headers={"Content-Type": headers.get("Content-Type", _MANIFESTS.split(", ")[0])},
        )
        if put is None:
            raise ImageError(f"registry {self.host} refused the tag {name}:{new_tag}")

    def login(self) -> None:
        return None


def registry_for(
    repo: str, region: Callable[[], str], *, on_notice: NoticeFn = lambda message: None
) -> tuple[Registry, str]:
    """The registry that holds `repo` and the repository's name in it; `region`
    gives the region of a bare ECR repository name."""
    host, name = split_repository(repo)
    if host is None:
        return EcrRegistry(region(), on_notice=on_notice), name
    ecr = ecr_host(host)
    if ecr is not None:
        return EcrRegistry(ecr[1], ecr[0], on_notice=on_notice), name
    return DockerRegistry(host), name


def base_login(image: str) -> Login | None:
    """Credentials to pull `image` with: an ECR login for an ECR image (such as the
    SageMaker framework images), else None (docker's own configuration applies)."""
    host, _ = split_repository(image)
    ecr = ecr_host(host) if host else None
    if ecr is None:
        return None
    return EcrRegistry(ecr[1], ecr[0]).login()
