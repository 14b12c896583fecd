"""Scripted ECS (``EcsPort``): UpdateService recorded, DescribeServices as told, temporary services."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deploy_agent.core.errors import AwsError, AwsNotFound
from deploy_agent.testing.native import FakeServiceDeployments


@dataclass(frozen=True)
class AwsCall:
    """One AWS-visible change a fake received: the call, the resource it named, and what it set.

    ``detail`` is the task definition for ECS calls and the listener's forward weights *after* the
    change for listener calls (``{target_group_arn: weight}``).
    """

    call: str
    resource: str
    detail: Any = None


@dataclass
class TempService:
    """A service made by CreateService: its own deployments, target group and lifecycle status."""

    name: str
    task_definition: str
    target_group_arn: str
    desired_count: int
    template: dict[str, Any]
    deployments: list[dict[str, Any]]
    status: str = "ACTIVE"  # DeleteService makes it INACTIVE

    def describe(self) -> dict[str, Any]:
        """Return the service the way DescribeServices shows it."""
        balancers = [
            {k: v for k, v in lb.items() if k in ("containerName", "containerPort")}
            | {"targetGroupArn": self.target_group_arn}
            for lb in self.template.get("loadBalancers") or []
        ][:1]
        return {
            "serviceName": self.name,
            "status": self.status,
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired_count,
            "loadBalancers": balancers,
            "deployments": copy.deepcopy(self.deployments),
            "events": [],
        }


@dataclass
class UpdateCall:
    cluster: str
    service: str
    task_definition_arn: str
    desired_count: int | None
    maximum_percent: int | None
    minimum_healthy_percent: int | None
    circuit_breaker: bool | None
    circuit_breaker_rollback: bool | None
    deployment_configuration: dict[str, Any] | None = None


@dataclass
class FakeEcs(FakeServiceDeployments):
    """An ECS service whose deployments the test sets; UpdateService starts a new PRIMARY deployment."""

    task_definition: str
    deployments: list[dict[str, Any]] = field(default_factory=list)
    updates: list[UpdateCall] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    describes: int = 0
    #: the original service's ``loadBalancers`` and ``desiredCount`` as DescribeServices shows them
    load_balancers: list[dict[str, Any]] = field(default_factory=list)
    desired_count: int = 2
    #: the original service's name; when set, describing a name that is neither it nor a created
    #: service raises ``AwsNotFound`` (when None, every unknown name describes the original service)
    service_name: str | None = None
    temp_services: dict[str, TempService] = field(default_factory=dict)
    journal: list[AwsCall] = field(default_factory=list)
    #: names DescribeServices answers MISSING for (ECS's eventual consistency after CreateService)
    missing: set[str] = field(default_factory=set)

    def describe_service(self, cluster: str, service: str) -> dict[str, Any]:
        """Return the service; a created one answers for itself and raises ``AwsNotFound`` once deleted."""
        self.describes += 1
        if service in self.missing:
            raise AwsNotFound(
                f"ECS service {service} not found in cluster {cluster} (MISSING)", service="ecs"
            )
        temp = self.temp_services.get(service)
        if temp is not None:
            if temp.status == "INACTIVE":
                raise AwsNotFound(
                    f"ECS service {service} is INACTIVE (deleted)", service="ecs", code="INACTIVE"
                )
            return temp.describe()
        if self.service_name is not None and service != self.service_name:
            raise AwsNotFound(f"ECS service {service} not found in cluster {cluster}", service="ecs")
        return {
            "serviceName": service,
            "status": "ACTIVE",
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired_count,
            "loadBalancers": copy.deepcopy(self.load_balancers),
            "deployments": copy.deepcopy(self.deployments),
            "deploymentConfiguration": copy.deepcopy(self.deployment_configuration),
            "events": [],
        }

    def update_service(
        self,
        cluster: str,
        service: str,
        task_definition_arn: str,
        desired_count: int | None = None,
        maximum_percent: int | None = None,
        minimum_healthy_percent: int | None = None,
        circuit_breaker: bool | None = None,
        circuit_breaker_rollback: bool | None = None,
        deployment_configuration: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        config = dict(deployment_configuration or {})
        self.deployment_configuration.update(copy.deepcopy(config))
        self.updates.append(
            UpdateCall(
                cluster,
                service,
                task_definition_arn,
                desired_count,
                maximum_percent,
                minimum_healthy_percent,
                circuit_breaker,
                circuit_breaker_rollback,
                config or None,
            )
        )
        self.journal.append(AwsCall("update_service", service, task_definition_arn))
        self.task_definition = task_definition_arn
        for dep in self.deployments:
            dep["status"] = "ACTIVE"
        self.deployments.insert(
            0, deployment(f"ecs-svc/{len(self.updates)}", task_definition_arn, "IN_PROGRESS")
        )
        described = self.describe_service(cluster, service)
        if config.get("strategy", "ROLLING") != "ROLLING":
            arn = self.start_native(cluster, service, task_definition_arn, config)
            if self.names_current_deployment:
                described["currentServiceDeployment"] = arn
        return described

    def create_service(
        self,
        cluster: str,
        template: dict[str, Any],
        name: str,
        task_definition_arn: str,
        target_group_arn: str,
        desired_count: int,
    ) -> dict[str, Any]:
        """Start a service beside the original: one IN_PROGRESS deployment on ``task_definition_arn``.

        Creating a name that is still ACTIVE fails, as ECS does ("Creation of service was not idempotent").
        """
        self.created.append(name)
        existing = self.temp_services.get(name)
        if existing is not None and existing.status == "ACTIVE":
            raise AwsError(f"Creation of service {name} was not idempotent", service="ecs")
        first = deployment(f"ecs-svc/{name}", task_definition_arn, "IN_PROGRESS")
        first["desiredCount"] = desired_count
        self.temp_services[name] = TempService(
            name, task_definition_arn, target_group_arn, desired_count, copy.deepcopy(template), [first]
        )
        self.journal.append(AwsCall("create_service", name, task_definition_arn))
        return self.temp_services[name].describe()

    def delete_service(self, cluster: str, service: str) -> None:
        """Mark a created service INACTIVE; a missing one is fine (like the adapter)."""
        self.deleted.append(service)
        temp = self.temp_services.get(service)
        if temp is not None:
            temp.status = "INACTIVE"
        self.journal.append(AwsCall("delete_service", service))

    def complete_service(self, name: str) -> None:
        """Let a created service's deployment finish: all tasks running, rolloutState COMPLETED."""
        dep = self.temp_services[name].deployments[0]
        dep["rolloutState"], dep["runningCount"] = "COMPLETED", dep["desiredCount"]

    def fail_service(
        self, name: str, failed_tasks: int = 3, reason: str = "", circuit_breaker: bool = False
    ) -> None:
        """Make a created service's tasks fail ``failed_tasks`` times (and its rollout FAILED if asked)."""
        dep = self.temp_services[name].deployments[0]
        dep["failedTasks"], dep["rolloutStateReason"] = failed_tasks, reason
        if circuit_breaker:
            dep["rolloutState"] = "FAILED"

    def is_active(self, name: str) -> bool:
        """Is ``name`` a created service that has not been deleted?"""
        temp = self.temp_services.get(name)
        return temp is not None and temp.status == "ACTIVE"

    def set_rollout(self, state: str, reason: str = "", index: int = 0) -> None:
        """Set the rolloutState of a deployment (0 = newest)."""
        self.deployments[index]["rolloutState"] = state
        self.deployments[index]["rolloutStateReason"] = reason

    def settle(self) -> None:
        """Finish the newest deployment and drop the others, as ECS does when the rollout completes."""
        self.deployments[0]["rolloutState"] = "COMPLETED"
        del self.deployments[1:]


def deployment(id_: str, task_definition: str, rollout: str, status: str = "PRIMARY") -> dict[str, Any]:
    """Return a deployment dict shaped like DescribeServices'."""
    return {
        "id": id_,
        "status": status,
        "taskDefinition": task_definition,
        "rolloutState": rollout,
        "rolloutStateReason": "",
        "desiredCount": 2,
        "runningCount": 0,
        "failedTasks": 0,
    }
