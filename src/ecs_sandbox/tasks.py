"""ECS tasks: moto's Task objects as the scheduler moves them, and what their containers need to run."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from moto.backends import get_backend
from moto.core.utils import utcnow
from moto.ecs import models as ecs_models

# moto's models gain the attributes ECS has and moto never sets (stopCode, stoppedAt, ...): its
# serializer picks up any attribute named after a botocore shape member. Typed loosely on purpose.
Task: Any = ecs_models.Task
Container: Any = ecs_models.Container


@dataclass(frozen=True)
class ContainerSpec:
    """One container of a task as Docker will run it."""

    name: str
    image: str
    environment: dict[str, str]
    command: list[str] | None
    healthcheck: dict[str, Any] | None


@dataclass(frozen=True)
class LaunchResult:
    """What starting a task's containers gave: container ids by name, or the reason it failed."""

    container_ids: dict[str, str]
    digests: dict[str, str]
    error: str = ""


@dataclass
class TaskRecord:
    """The scheduler's view of one task: its moto object, its containers, where it listens."""

    task: Any
    region: str
    cluster: str
    service_name: str
    deployment_id: str
    ports: dict[str, int]
    target_container: str
    service_ref: Any = None  # the moto Service object: a re-created service with the same name is another one
    created: float = field(default_factory=time.monotonic)
    container_ids: dict[str, str] = field(default_factory=dict)
    launch: Future[LaunchResult] | None = None
    targets: list[tuple[str, str]] = field(default_factory=list)
    healthy: bool = False
    stopping: bool = False
    removal: Future[None] | None = None
    failed: bool = False
    failure_counted: bool = False
    success_counted: bool = False  # its healthy start was seen (it resets failedTasks and the back-off)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    virtual: bool = False  # no containers: RUNNING after the start delay and healthy at once
    #: every container definition of its task definition (the essential ones run; all are logged)
    container_definitions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task_arn(self) -> str:
        """Return the task's ARN."""
        return str(self.task.task_arn)

    @property
    def task_id(self) -> str:
        """Return the task's id (the last part of its ARN)."""
        return str(self.task.id)

    @property
    def service_key(self) -> tuple[str, str, str]:
        """Return (region, cluster, service name)."""
        return (self.region, self.cluster, self.service_name)

    @property
    def target_id(self) -> str:
        """Return the IP that represents the task in an ip target group (its ENI address, as in ECS)."""
        for attachment in self.task.attachments:
            for detail in attachment.get("details", []):
                if detail.get("name") == "privateIPv4Address":
                    return str(detail["value"])
        digits = int(self.task_id.replace("-", "")[:6], 16)
        return f"10.{digits >> 16 & 255}.{digits >> 8 & 255}.{digits & 255 or 1}"


def is_gone(record: TaskRecord) -> bool:
    """Return whether the task has STOPPED (it no longer counts anywhere)."""
    return bool(record.task.last_status == "STOPPED")


def create_task(backend: Any, service: Any, task_definition: Any, deployment_id: str) -> Any:
    """Return a new PROVISIONING moto task of the service, stored in the backend."""
    task = Task(
        cluster=backend.clusters[service.cluster_name],
        task_definition=task_definition,
        container_instance_arn=None,
        resource_requirements=None,
        backend=backend,
        group=f"service:{service.name}",
        launch_type=service.launch_type or "FARGATE",
        started_by=deployment_id,
        networking_configuration=service.network_configuration or None,
        platform_version=service.platform_version,
    )
    task.containers = [_container(task_definition, d) for d in task_definition.container_definitions]
    task.last_status = "PROVISIONING"
    task.health_status = "UNKNOWN"
    task.created_at = utcnow()
    task.cpu = task_definition.cpu
    task.memory = task_definition.memory
    task.connectivity = "CONNECTED"
    tasks = backend.tasks.get(service.cluster_name, {})
    backend.tasks[service.cluster_name] = {**tasks, task.task_arn: task}  # rebind: readers never see it grow
    return task


def _container(task_definition: Any, definition: dict[str, Any]) -> Any:
    container = Container(task_definition)
    container.name = definition.get("name")
    container.image = definition.get("image")
    container.cpu = definition.get("cpu", 0)
    container.memory = definition.get("memory")
    container.environment = definition.get("environment")
    container.command = definition.get("command")
    container.exitCode = None
    container.health_status = "UNKNOWN"
    return container


def mark_pending(task: Any) -> None:
    """The task's image is being pulled."""
    task.last_status = "PENDING"
    task.pull_started_at = utcnow()


def mark_running(task: Any, result: LaunchResult) -> None:
    """Every container of the task is up."""
    now = utcnow()
    task.pull_stopped_at = now
    task.started_at = now
    task.last_status = "RUNNING"
    for container in task.containers:
        container.last_status = "RUNNING"
        container.runtime_id = result.container_ids.get(container.name)
        container.image_digest = result.digests.get(container.name)


def mark_health(task: Any, healthy: bool) -> None:
    """Record the task's health as ECS shows it."""
    status = "HEALTHY" if healthy else "UNHEALTHY"
    task.health_status = status
    for container in task.containers:
        container.health_status = status


def mark_stopping(task: Any, reason: str, stop_code: str) -> None:
    """ECS asked the task to stop (it may still be draining)."""
    task.desired_status = "STOPPED"
    task.last_status = "DEACTIVATING"
    task.stopped_reason = reason
    task.stop_code = stop_code
    task.stopping_at = utcnow()


def mark_stopped(task: Any, exit_codes: dict[str, int | None], container_reason: str = "") -> None:
    """The task is gone; record each container's exit code."""
    now = utcnow()
    task.desired_status = "STOPPED"
    task.last_status = "STOPPED"
    task.stopped_at = now
    task.execution_stopped_at = now
    if getattr(task, "stopping_at", None) is None:
        task.stopping_at = now
    for container in task.containers:
        container.last_status = "STOPPED"
        container.exitCode = exit_codes.get(container.name)
        if container_reason:
            container.reason = container_reason


def resolve_secret(account: str, region: str, value_from: str) -> str:
    """Return a container secret's value from moto's Secrets Manager or SSM, as ECS injects it."""
    if ":secretsmanager:" in value_from:
        parts = value_from.split(":")
        secret_id, extra = ":".join(parts[:7]), [*parts[7:], "", "", ""]
        json_key, stage, version = extra[0], extra[1], extra[2]
        backend = get_backend("secretsmanager")[account][region]
        value = backend.get_secret_value(secret_id, version or None, stage or None)  # type: ignore[arg-type]
        text = str(value.get("SecretString", ""))
        return str(json.loads(text)[json_key]) if json_key else text
    name = value_from.split(":parameter", 1)[1] if ":parameter" in value_from else value_from
    ssm = get_backend("ssm")[account][region]
    parameter = ssm.get_parameter(name) or ssm.get_parameter(name.lstrip("/"))
    if parameter is None:
        raise KeyError(f"SSM parameter {value_from} not found")
    return str(parameter.value)
