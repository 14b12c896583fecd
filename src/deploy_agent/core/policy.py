"""The operator's policy applied to a message or a manual rollback: pure checks, no I/O.

:func:`check_request` and :func:`check_rollback` return one :class:`Violation` per broken rule,
each naming the message field (a dotted snake_case path), the policy key it broke, and a problem
that never repeats a secret. An empty list means the policy allows it. The DNS and address-class
check of outgoing URLs happens at request time (``adapters.outbound``); here only the host names
are matched against the policy's patterns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from deploy_agent.models.policy import Policy, matches
from deploy_agent.models.request import DeployToECSTask

#: Docker Hub, as Docker names the registry of an image without a registry host
DOCKER_HUB = "docker.io"
_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_SPELLED_UNITS = re.compile(r"^\s*(\d{1,4}(?:\.\d{1,3})?)\s*(vcpu|gb)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Violation:
    """One rule of the policy a message breaks."""

    field: str
    rule: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        """Return the shape of one entry of ``DeploymentResult.errors``."""
        return {"field": self.field, "rule": self.rule, "problem": self.problem}


def registry_of(image: str) -> str:
    """Return the registry host of an image reference, as Docker reads it (no host: Docker Hub)."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return DOCKER_HUB


def ecr_repository_of(image: str) -> str | None:
    """Return the ECR repository an image reference names, or None when it is not an ECR image."""
    host, slash, rest = image.partition("/")
    if not slash or not _ECR_HOST.match(host.lower()):
        return None
    rest = rest.split("@", 1)[0]
    name, colon, tag = rest.rpartition(":")
    return name if colon and "/" not in tag else rest


def check_request(policy: Policy, message: DeployToECSTask, region: str) -> list[Violation]:
    """Return every way ``message`` (to be deployed in ``region``) breaks ``policy``."""
    found = list(_target(policy, region, message.cluster_name, message.service_name))
    found += _images_of_message(policy, message)
    if message.ecr.lifecycle_policy is not None and not policy.allow_ecr_lifecycle_policy:
        found.append(
            Violation(
                "ecr.lifecycle_policy",
                "allow_ecr_lifecycle_policy",
                "a message may not set an ECR lifecycle policy (it can expire a repository's images)",
            )
        )
    if policy.max_desired_count is not None and (message.desired_count or 0) > policy.max_desired_count:
        found.append(
            Violation(
                "desired_count",
                "max_desired_count",
                f"{message.desired_count} is over the largest allowed, {policy.max_desired_count}",
            )
        )
    if message.task_definition is not None:  # container_name's image is image.uri, checked above
        found += check_task_definition(
            policy, message.task_definition.to_register_kwargs(), "task_definition"
        )
    found += _urls(policy, message)
    return found


def check_rollback(
    policy: Policy, cluster: str, service: str, region: str, task_definition: Mapping[str, Any]
) -> list[Violation]:
    """Return every way a manual rollback to ``task_definition`` (ECS's described shape) breaks ``policy``."""
    found = list(_target(policy, region, cluster, service))
    return found + check_task_definition(policy, task_definition, "to")


def check_target(policy: Policy, cluster: str, service: str, region: str) -> list[Violation]:
    """Return the region, cluster and service rules that a deployment of this service breaks."""
    return list(_target(policy, region, cluster, service))


def _target(policy: Policy, region: str, cluster: str, service: str) -> Iterator[Violation]:
    for field, rule, patterns, value in (
        ("region", "regions", policy.regions, region),
        ("cluster_name", "clusters", policy.clusters, cluster),
        ("service_name", "services", policy.services, service),
    ):
        if not matches(patterns, value):
            yield Violation(field, rule, f"{value!r} is not one of the allowed {rule}")


def _images_of_message(policy: Policy, message: DeployToECSTask) -> list[Violation]:
    found: list[Violation] = []
    if message.image.repository is not None and not matches(policy.repositories, message.image.repository):
        found.append(
            Violation(
                "image.repository",
                "repositories",
                f"ECR repository {message.image.repository!r} is not one of the allowed repositories",
            )
        )
    if message.image.uri is not None:
        found += _image(policy, message.image.uri, "image.uri")
    return found


def _image(policy: Policy, image: str, field: str) -> list[Violation]:
    found: list[Violation] = []
    registry = registry_of(image)
    if not matches(policy.registries, registry):
        found.append(
            Violation(field, "registries", f"registry {registry!r} is not one of the allowed registries")
        )
    repository = ecr_repository_of(image)
    if repository is not None and not matches(policy.repositories, repository):
        found.append(
            Violation(
                field, "repositories", f"ECR repository {repository!r} is not one of the allowed repositories"
            )
        )
    return found


def check_task_definition(policy: Policy, definition: Mapping[str, Any], where: str) -> list[Violation]:
    """Return the rules a task definition in ECS's shape (``register_task_definition`` kwargs or
    a described definition) breaks; fields are named under ``where`` in snake_case."""
    found: list[Violation] = []
    for key, rule, patterns in (
        ("taskRoleArn", "task_role_arns", policy.task_role_arns),
        ("executionRoleArn", "execution_role_arns", policy.execution_role_arns),
    ):
        role = definition.get(key)
        if isinstance(role, str) and role and not matches(patterns, role):
            found.append(
                Violation(_path(where, key), rule, f"role {role!r} is not one of the allowed {rule}")
            )
    if definition.get("networkMode") == "host" and not policy.allow_host_network:
        found.append(
            Violation(_path(where, "networkMode"), "allow_host_network", "network_mode 'host' is not allowed")
        )
    found += _resources(policy, definition, where)
    containers = definition.get("containerDefinitions") or []
    for i, container in enumerate(containers if isinstance(containers, list) else []):
        if isinstance(container, Mapping):
            found += _container(policy, container, _path(where, "containerDefinitions", str(i)))
    return found


def _container(policy: Policy, container: Mapping[str, Any], where: str) -> list[Violation]:
    found: list[Violation] = []
    image = container.get("image")
    if isinstance(image, str) and image:
        found += _image(policy, image, _path(where, "image"))
    if container.get("privileged") is True and not policy.allow_privileged:
        found.append(
            Violation(_path(where, "privileged"), "allow_privileged", "privileged containers are not allowed")
        )
    log_configuration = container.get("logConfiguration")
    if isinstance(log_configuration, Mapping):
        driver = str(log_configuration.get("logDriver") or "")
        if not matches(policy.log_drivers, driver):
            found.append(
                Violation(
                    _path(where, "logConfiguration", "logDriver"),
                    "log_drivers",
                    f"log driver {driver[:64]!r} is not one of the allowed log_drivers",
                )
            )
        found += _secrets(
            policy, log_configuration.get("secretOptions"), _path(where, "logConfiguration", "secretOptions")
        )
    found += _secrets(policy, container.get("secrets"), _path(where, "secrets"))
    credentials = container.get("repositoryCredentials")
    if isinstance(credentials, Mapping):
        found += _secret(
            policy,
            credentials.get("credentialsParameter"),
            _path(where, "repositoryCredentials", "credentialsParameter"),
        )
    return found


def _secrets(policy: Policy, entries: object, where: str) -> list[Violation]:
    """Check AWS's ``[{name, valueFrom}]`` list of secrets (the field is named by the secret's name)."""
    if not isinstance(entries, list):
        return []
    found: list[Violation] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, Mapping):
            name = entry.get("name")
            label = name if isinstance(name, str) and name else str(i)
            found += _secret(policy, entry.get("valueFrom"), f"{where}.{label}")
    return found


def _secret(policy: Policy, arn: object, field: str) -> list[Violation]:
    prefixes = policy.secret_arn_prefixes
    if prefixes is None or not isinstance(arn, str):
        return []
    if any(arn.startswith(prefix) for prefix in prefixes):
        return []
    # The ARN is not repeated: a misplaced plain value would be the secret itself.
    return [Violation(field, "secret_arn_prefixes", "the secret's ARN does not start with an allowed prefix")]


def _resources(policy: Policy, definition: Mapping[str, Any], where: str) -> list[Violation]:
    found: list[Violation] = []
    containers = [c for c in definition.get("containerDefinitions") or [] if isinstance(c, Mapping)]
    for key, rule, limit, per_unit, container_keys in (
        ("cpu", "max_cpu", policy.max_cpu, 1024, ("cpu",)),
        ("memory", "max_memory", policy.max_memory, 1024, ("memory", "memoryReservation")),
    ):
        if limit is None:
            continue
        amount = _units(definition.get(key), per_unit)
        if amount is None:  # no task-level size (EC2): the containers' sizes add up
            amount = sum(
                next((v for k in container_keys if (v := _units(c.get(k), per_unit)) is not None), 0)
                for c in containers
            )
        if amount > limit:
            unit = "cpu units" if key == "cpu" else "MiB"
            found.append(
                Violation(_path(where, key), rule, f"{amount} {unit} is over the largest allowed, {limit}")
            )
    return found


def _units(value: object, per_unit: int) -> int | None:
    """Return a cpu/memory amount given as an int, ``"256"`` or ``"1 vCPU"``/``"2 GB"``, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.strip().isdigit():
            return int(value.strip())
        if match := _SPELLED_UNITS.match(value):
            return round(float(match.group(1)) * per_unit)
    return None


def _urls(policy: Policy, message: DeployToECSTask) -> list[Violation]:
    urls: list[tuple[str, str]] = []
    if message.health_check is not None:
        urls.append(("health_check.url", message.health_check.url))
    load_balancer = getattr(message.strategy, "load_balancer", None)
    for name in ("test_url", "production_url"):
        url = getattr(load_balancer, name, None)
        if isinstance(url, str):
            urls.append((f"strategy.load_balancer.{name}", url))
    urls.extend((f"analysis.{i}.url", gate.url) for i, gate in enumerate(message.analysis))
    found = [
        Violation(field, "outbound.url_hosts", f"host {host!r} is not one of the allowed outbound.url_hosts")
        for field, url in urls
        if not matches(policy.outbound.url_hosts, host := _host(url))
    ]
    for i, url in enumerate(message.notify.webhooks):
        host = _host(url)
        if not matches(policy.outbound.webhook_hosts, host):
            found.append(
                Violation(
                    f"notify.webhooks.{i}",
                    "outbound.webhook_hosts",
                    f"host {host!r} is not one of the allowed outbound.webhook_hosts",
                )
            )
    return found


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _path(where: str, *keys: str) -> str:
    """Return a dotted snake_case path (AWS's camelCase keys converted)."""
    return ".".join([where, *(_CAMEL.sub(r"_\1", key).lower() if not key.isdigit() else key for key in keys)])
