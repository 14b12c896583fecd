"""ECR: registry credentials, repositories made idempotently, lifecycle policies, images by tag.

A repository's settings change only when the caller gives them: ``None`` leaves an existing
repository as it is (so a hardened repository keeps its IMMUTABLE tags and scan on push), and a new
repository gets ECR's defaults for what is not given.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from deploy_agent.adapters.aws import AwsClients, call
from deploy_agent.core.errors import AwsError, AwsNotFound
from deploy_agent.core.image_tags import RemoteImage, manifest_config_digest

if TYPE_CHECKING:
    from mypy_boto3_ecr.type_defs import RepositoryTypeDef

#: ECR's ImageTagMutability (botocore's ecr model; the *_WITH_EXCLUSION values came in 2025)
TagMutability = Literal["MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"]
#: ``[{"filterType": "WILDCARD", "filter": "dev-*"}]``, as ECR writes them
ExclusionFilters = list[dict[str, str]]

#: the manifest types BatchGetImage may answer with (ECR's default is Docker schema 2 only)
_MANIFEST_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
]


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one registry host. The password never shows in ``repr`` or ``str``."""

    username: str
    password: str = field(repr=False)
    registry: str
    expires_at: datetime | None = None

    def as_docker_auth(self) -> dict[str, str]:
        """Return the ``auth_config`` docker-py sends as ``X-Registry-Auth``."""
        return {"username": self.username, "password": self.password, "serveraddress": self.registry}


@dataclass(frozen=True)
class Repository:
    """An ECR repository as the pipeline needs it; ``created`` says whether this call made it."""

    name: str
    uri: str
    registry_id: str
    created: bool
    #: settings this call changed on an existing repository, e.g. ``("scanOnPush: False -> True",)``
    changes: tuple[str, ...] = ()
    #: the repository's tag mutability and exclusion filter patterns after this call
    tag_mutability: str = "MUTABLE"
    exclusion_filters: tuple[str, ...] = ()


def registry_for_push(repository_uri: str, override: str | None) -> str:
    """Return the repository reference to push to: ``repository_uri`` with its host replaced by ``override``.

    ``123456789012.dkr.ecr.us-east-1.amazonaws.com/team/web`` with override ``127.0.0.1:5000`` gives
    ``127.0.0.1:5000/team/web``: the sandbox registry receives the push while task definitions keep
    naming the ECR host. No override gives the URI unchanged.
    """
    if not override:
        return repository_uri
    host = override.split("://", 1)[-1].rstrip("/")
    _, slash, path = repository_uri.partition("/")
    return f"{host}/{path}" if slash else f"{host}/{repository_uri}"


class EcrRegistry:
    """One method per ECR call the pipeline makes."""

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def authorization(self, registry_id: str | None = None) -> RegistryAuth:
        """Return docker credentials for the account's registry (valid 12 hours on AWS)."""
        ecr = self._clients.ecr
        if registry_id:
            response = call(ecr.get_authorization_token, registryIds=[registry_id])
        else:
            response = call(ecr.get_authorization_token)
        data = response.get("authorizationData") or []
        if not data:
            raise AwsError(
                "ecr GetAuthorizationToken returned no authorization data",
                service="ecr",
                operation="GetAuthorizationToken",
                code="NoAuthorizationData",
            )
        entry = data[0]
        try:
            decoded = base64.b64decode(entry.get("authorizationToken", ""), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, sep, password = decoded.partition(":")
        if not sep or not username or not password:
            # the token itself is never echoed
            raise AwsError(
                "ecr GetAuthorizationToken returned a token that is not base64 'user:password'",
                service="ecr",
                operation="GetAuthorizationToken",
                code="InvalidAuthorizationToken",
            )
        endpoint = entry.get("proxyEndpoint", "")
        registry = endpoint.split("://", 1)[-1].rstrip("/")
        return RegistryAuth(
            username=username, password=password, registry=registry, expires_at=entry.get("expiresAt")
        )

    def describe_repository(self, name: str, registry_id: str | None = None) -> RepositoryTypeDef:
        """Return the repository; raise ``AwsNotFound`` when it does not exist."""
        kwargs: dict[str, Any] = {"repositoryNames": [name]}
        if registry_id:
            kwargs["registryId"] = registry_id
        repositories = call(self._clients.ecr.describe_repositories, **kwargs).get("repositories", [])
        if not repositories:
            raise AwsNotFound(
                f"ECR repository {name} does not exist",
                service="ecr",
                operation="DescribeRepositories",
                code="RepositoryNotFoundException",
            )
        return repositories[0]

    def ensure_repository(
        self,
        name: str,
        scan_on_push: bool | None = None,
        tag_mutability: TagMutability | None = None,
        create: bool = True,
        registry_id: str | None = None,
        exclusion_filters: ExclusionFilters | None = None,
    ) -> Repository:
        """Return the repository, creating it or aligning its settings as asked.

        ``None`` for a setting leaves an existing repository's value alone (and uses AWS's default,
        scanOnPush false and MUTABLE, when creating). ``exclusion_filters`` go with a
        ``*_WITH_EXCLUSION`` mutability (PutImageTagMutability needs them for those values). A
        missing repository with ``create=False`` raises ``AwsNotFound``.
        """
        wanted = _Wanted(scan_on_push, tag_mutability, exclusion_filters)
        try:
            existing = self.describe_repository(name, registry_id)
        except AwsNotFound as exc:
            if not create:
                raise AwsNotFound(
                    f"ECR repository {name} does not exist and create_repository is false",
                    service=exc.service,
                    operation=exc.operation,
                    code=exc.code,
                ) from exc
            return self._create_repository(name, wanted, registry_id)
        return self._align_repository(existing, wanted)

    def image_by_tag(self, name: str, tag: str, registry_id: str | None = None) -> RemoteImage | None:
        """Return the image the tag names in the repository (digest and config digest), or None.

        One BatchGetImage gives both the manifest digest and the manifest itself, whose
        ``config.digest`` is the image id a local engine knows the image by.
        """
        kwargs: dict[str, Any] = {
            "repositoryName": name,
            "imageIds": [{"imageTag": tag}],
            "acceptedMediaTypes": _MANIFEST_TYPES,
        }
        if registry_id:
            kwargs["registryId"] = registry_id
        images = call(self._clients.ecr.batch_get_image, **kwargs).get("images") or []
        if not images:  # the tag is free: ECR lists it under failures (ImageNotFound)
            return None
        image = images[0]
        digest = str(image.get("imageId", {}).get("imageDigest", ""))
        return RemoteImage(
            digest=digest, config_digest=manifest_config_digest(image.get("imageManifest", ""))
        )

    def put_lifecycle_policy(self, name: str, policy_text: str, registry_id: str | None = None) -> None:
        """Store the lifecycle policy (JSON text) on the repository, replacing any previous one."""
        kwargs: dict[str, Any] = {"repositoryName": name, "lifecyclePolicyText": policy_text}
        if registry_id:
            kwargs["registryId"] = registry_id
        call(self._clients.ecr.put_lifecycle_policy, **kwargs)

    def _create_repository(self, name: str, wanted: _Wanted, registry_id: str | None) -> Repository:
        # Only what is given is sent: ECR's own defaults apply to the rest (MUTABLE, and scanning
        # as the registry's scanning configuration says; the per-repository setting is deprecated
        # in favour of PutRegistryScanningConfiguration, so it is not sent unless asked for).
        kwargs: dict[str, Any] = {"repositoryName": name}
        if wanted.scan_on_push is not None:
            kwargs["imageScanningConfiguration"] = {"scanOnPush": wanted.scan_on_push}
        if wanted.tag_mutability is not None:
            kwargs["imageTagMutability"] = wanted.tag_mutability
            if wanted.exclusion_filters:
                kwargs["imageTagMutabilityExclusionFilters"] = wanted.exclusion_filters
        if registry_id:
            kwargs["registryId"] = registry_id
        try:
            made = call(self._clients.ecr.create_repository, **kwargs)["repository"]
        except AwsError as exc:
            if exc.code != "RepositoryAlreadyExistsException":
                raise
            # another worker made it between our describe and create
            return self._align_repository(self.describe_repository(name, registry_id), wanted)
        return _repository(made, created=True)

    def _align_repository(self, repo: RepositoryTypeDef, wanted: _Wanted) -> Repository:
        ecr = self._clients.ecr
        name, registry_id = repo["repositoryName"], repo["registryId"]
        changes: list[str] = []
        current_scan = bool(repo.get("imageScanningConfiguration", {}).get("scanOnPush", False))
        if wanted.scan_on_push is not None and wanted.scan_on_push != current_scan:
            call(
                ecr.put_image_scanning_configuration,
                registryId=registry_id,
                repositoryName=name,
                imageScanningConfiguration={"scanOnPush": wanted.scan_on_push},
            )
            changes.append(f"scanOnPush: {current_scan} -> {wanted.scan_on_push}")
        current_mutability = str(repo.get("imageTagMutability", "MUTABLE"))
        current_filters = _filters(repo)
        mutability, filters = current_mutability, current_filters
        if wanted.tag_mutability is not None and (
            wanted.tag_mutability != current_mutability
            or (wanted.exclusion_filters is not None and wanted.exclusion_filters != current_filters)
        ):
            kwargs: dict[str, Any] = {
                "registryId": registry_id,
                "repositoryName": name,
                "imageTagMutability": wanted.tag_mutability,
            }
            if wanted.exclusion_filters:
                kwargs["imageTagMutabilityExclusionFilters"] = wanted.exclusion_filters
            call(ecr.put_image_tag_mutability, **kwargs)
            mutability, filters = wanted.tag_mutability, list(wanted.exclusion_filters or [])
            if wanted.tag_mutability != current_mutability:
                changes.append(f"imageTagMutability: {current_mutability} -> {wanted.tag_mutability}")
            else:
                changes.append("imageTagMutabilityExclusionFilters changed")
        return _repository(
            repo, created=False, changes=tuple(changes), tag_mutability=mutability, filters=filters
        )


@dataclass(frozen=True)
class _Wanted:
    """The settings a message asks for; None leaves the repository's own."""

    scan_on_push: bool | None
    tag_mutability: TagMutability | None
    exclusion_filters: ExclusionFilters | None


def _filters(repo: RepositoryTypeDef) -> ExclusionFilters:
    return [
        {"filterType": str(f.get("filterType", "")), "filter": str(f.get("filter", ""))}
        for f in repo.get("imageTagMutabilityExclusionFilters") or []
    ]


def _repository(
    repo: RepositoryTypeDef,
    *,
    created: bool,
    changes: tuple[str, ...] = (),
    tag_mutability: str | None = None,
    filters: list[dict[str, str]] | None = None,
) -> Repository:
    if filters is None:
        filters = _filters(repo)
    return Repository(
        name=repo["repositoryName"],
        uri=repo["repositoryUri"],
        registry_id=repo["registryId"],
        created=created,
        changes=changes,
        tag_mutability=tag_mutability or str(repo.get("imageTagMutability", "MUTABLE")),
        exclusion_filters=tuple(str(f.get("filter", "")) for f in filters),
    )
