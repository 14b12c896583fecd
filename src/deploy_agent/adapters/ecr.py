"""ECR: registry credentials, repositories made idempotently, lifecycle policies."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from deploy_agent.adapters.aws import AwsClients, call
from deploy_agent.core.errors import AwsError, AwsNotFound

if TYPE_CHECKING:
    from mypy_boto3_ecr.type_defs import RepositoryTypeDef

TagMutability = Literal["MUTABLE", "IMMUTABLE"]


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
    ) -> Repository:
        """Return the repository, creating it or aligning its settings as asked.

        ``None`` for a setting leaves an existing repository's value alone (and uses AWS's default,
        scanOnPush false and MUTABLE, when creating). A missing repository with ``create=False``
        raises ``AwsNotFound``.
        """
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
            return self._create_repository(name, scan_on_push, tag_mutability, registry_id)
        return self._align_repository(existing, scan_on_push, tag_mutability)

    def put_lifecycle_policy(self, name: str, policy_text: str, registry_id: str | None = None) -> None:
        """Store the lifecycle policy (JSON text) on the repository, replacing any previous one."""
        kwargs: dict[str, Any] = {"repositoryName": name, "lifecyclePolicyText": policy_text}
        if registry_id:
            kwargs["registryId"] = registry_id
        call(self._clients.ecr.put_lifecycle_policy, **kwargs)

    def _create_repository(
        self,
        name: str,
        scan_on_push: bool | None,
        tag_mutability: TagMutability | None,
        registry_id: str | None,
    ) -> Repository:
        kwargs: dict[str, Any] = {
            "repositoryName": name,
            "imageScanningConfiguration": {"scanOnPush": bool(scan_on_push)},
            "imageTagMutability": tag_mutability or "MUTABLE",
        }
        if registry_id:
            kwargs["registryId"] = registry_id
        try:
            made = call(self._clients.ecr.create_repository, **kwargs)["repository"]
        except AwsError as exc:
            if exc.code != "RepositoryAlreadyExistsException":
                raise
            # another worker made it between our describe and create
            return self._align_repository(
                self.describe_repository(name, registry_id), scan_on_push, tag_mutability
            )
        return _repository(made, created=True)

    def _align_repository(
        self, repo: RepositoryTypeDef, scan_on_push: bool | None, tag_mutability: TagMutability | None
    ) -> Repository:
        ecr = self._clients.ecr
        name, registry_id = repo["repositoryName"], repo["registryId"]
        changes: list[str] = []
        current_scan = bool(repo.get("imageScanningConfiguration", {}).get("scanOnPush", False))
        if scan_on_push is not None and scan_on_push != current_scan:
            call(
                ecr.put_image_scanning_configuration,
                registryId=registry_id,
                repositoryName=name,
                imageScanningConfiguration={"scanOnPush": scan_on_push},
            )
            changes.append(f"scanOnPush: {current_scan} -> {scan_on_push}")
        current_mutability = repo.get("imageTagMutability", "MUTABLE")
        if tag_mutability is not None and tag_mutability != current_mutability:
            call(
                ecr.put_image_tag_mutability,
                registryId=registry_id,
                repositoryName=name,
                imageTagMutability=tag_mutability,
            )
            changes.append(f"imageTagMutability: {current_mutability} -> {tag_mutability}")
        return _repository(repo, created=False, changes=tuple(changes))


def _repository(repo: RepositoryTypeDef, *, created: bool, changes: tuple[str, ...] = ()) -> Repository:
    return Repository(
        name=repo["repositoryName"],
        uri=repo["repositoryUri"],
        registry_id=repo["registryId"],
        created=created,
        changes=changes,
    )
