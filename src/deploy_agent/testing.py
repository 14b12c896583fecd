"""Test doubles that ship with the package: a scripted ECS for strategy tests without AWS.

``FakeEcs`` implements the strategies' ``EcsPort``: it records every UpdateService and lets a test
script what DescribeServices answers next, so a strategy's recipe can be tested step by step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass
class UpdateCall:
    cluster: str
    service: str
    task_definition_arn: str
    desired_count: int | None
    maximum_percent: int
    minimum_healthy_percent: int
    circuit_breaker: bool
    circuit_breaker_rollback: bool


@dataclass
class FakeEcs:
    """An ECS service whose deployments the test sets; UpdateService starts a new PRIMARY deployment."""

    task_definition: str
    deployments: list[dict[str, Any]] = field(default_factory=list)
    updates: list[UpdateCall] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    describes: int = 0

    def describe_service(self, cluster: str, service: str) -> dict[str, Any]:
        self.describes += 1
        return {
            "serviceName": service,
            "taskDefinition": self.task_definition,
            "deployments": copy.deepcopy(self.deployments),
            "events": [],
        }

    def update_service(
        self,
        cluster: str,
        service: str,
        task_definition_arn: str,
        desired_count: int | None,
        maximum_percent: int,
        minimum_healthy_percent: int,
        circuit_breaker: bool,
        circuit_breaker_rollback: bool,
    ) -> dict[str, Any]:
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
            )
        )
        self.task_definition = task_definition_arn
        for dep in self.deployments:
            dep["status"] = "ACTIVE"
        self.deployments.insert(
            0, deployment(f"ecs-svc/{len(self.updates)}", task_definition_arn, "IN_PROGRESS")
        )
        return self.describe_service(cluster, service)

    def create_service(
        self,
        cluster: str,
        template: dict[str, Any],
        name: str,
        task_definition_arn: str,
        target_group_arn: str,
        desired_count: int,
    ) -> dict[str, Any]:
        self.created.append(name)
        return {"serviceName": name, "taskDefinition": task_definition_arn}

    def delete_service(self, cluster: str, service: str) -> None:
        self.deleted.append(service)

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


@dataclass
class FakeClock:
    """A clock that moves only when told to."""

    at: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
