"""Verdicts on an ECS rolling deployment, read from a ``DescribeServices`` service dict.

We follow *our* deployment (by id once known, by task definition until then), never just
"the service is stable": a service that ECS rolled back is stable too, on the wrong revision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class RolloutState(StrEnum):
    PENDING = "pending"  # our deployment is not visible yet
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"  # ECS failed it (circuit breaker); see ``ecs_rolled_back``
    REPLACED = "replaced"  # another deployment took over and ours is gone


@dataclass(frozen=True)
class RolloutVerdict:
    """What our deployment is doing now, and why."""

    state: RolloutState
    deployment_id: str | None
    reason: str = ""
    ecs_rolled_back: bool = False
    running: int = 0
    desired: int = 0
    failed_tasks: int = 0

    @property
    def is_terminal(self) -> bool:
        return self.state in (RolloutState.COMPLETED, RolloutState.FAILED, RolloutState.REPLACED)


def _deployments(service: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    return list(service.get("deployments") or [])


def find_deployment(
    service: Mapping[str, Any], deployment_id: str | None, task_definition_arn: str
) -> Mapping[str, Any] | None:
    """Return our deployment: by id when we know it, else the newest one on our task definition."""
    for dep in _deployments(service):
        if deployment_id is not None and dep.get("id") == deployment_id:
            return dep
    if deployment_id is None:
        for dep in _deployments(service):
            if dep.get("taskDefinition") == task_definition_arn:
                return dep
    return None


def primary_deployment(service: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Return the PRIMARY deployment of a service, if it has one."""
    for dep in _deployments(service):
        if dep.get("status") == "PRIMARY":
            return dep
    return None


def is_ecs_rollback(deployment: Mapping[str, Any] | None) -> bool:
    """Is this (PRIMARY) deployment ECS's own circuit-breaker rollback?"""
    reason = str((deployment or {}).get("rolloutStateReason") or "")
    return "rolling back" in reason.lower()


def assess_rollout(
    service: Mapping[str, Any],
    deployment_id: str | None,
    task_definition_arn: str,
    previous_task_definition_arn: str | None = None,
) -> RolloutVerdict:
    """Return the verdict on our deployment of ``task_definition_arn``.

    When ours is gone and the service is back on ``previous_task_definition_arn``, ECS rolled it back
    (its circuit breaker), even if that rollback already finished before we looked.
    """
    ours = find_deployment(service, deployment_id, task_definition_arn)
    primary = primary_deployment(service)
    if ours is None:
        if deployment_id is None:
            return RolloutVerdict(RolloutState.PENDING, None, "waiting for ECS to start the deployment")
        back_on_previous = (
            primary is not None
            and previous_task_definition_arn is not None
            and primary.get("taskDefinition") == previous_task_definition_arn
        )
        if back_on_previous and not is_ecs_rollback(primary):
            return RolloutVerdict(
                RolloutState.FAILED,
                deployment_id,
                "ECS rolled the service back to the previous revision; our deployment is gone",
                ecs_rolled_back=True,
            )
        if primary is not None and is_ecs_rollback(primary):
            return RolloutVerdict(
                RolloutState.FAILED,
                deployment_id,
                str(primary.get("rolloutStateReason") or "ECS rolled the deployment back"),
                ecs_rolled_back=True,
            )
        return RolloutVerdict(RolloutState.REPLACED, deployment_id, "another deployment replaced ours")
    dep_id = str(ours.get("id"))
    running = int(ours.get("runningCount") or 0)
    desired = int(ours.get("desiredCount") or 0)
    failed = int(ours.get("failedTasks") or 0)
    reason = str(ours.get("rolloutStateReason") or "")
    rollout = ours.get("rolloutState")
    if rollout == "FAILED":
        rolled_back = primary is not None and primary.get("id") != dep_id and is_ecs_rollback(primary)
        return RolloutVerdict(RolloutState.FAILED, dep_id, reason, rolled_back, running, desired, failed)
    if ours.get("status") != "PRIMARY":
        return RolloutVerdict(
            RolloutState.REPLACED, dep_id, "another deployment replaced ours", False, running, desired, failed
        )
    if rollout == "COMPLETED":
        return RolloutVerdict(RolloutState.COMPLETED, dep_id, reason, False, running, desired, failed)
    return RolloutVerdict(RolloutState.IN_PROGRESS, dep_id, reason, False, running, desired, failed)


def is_settled_on(service: Mapping[str, Any], task_definition_arn: str) -> bool:
    """Is the service's PRIMARY deployment on ``task_definition_arn`` and COMPLETED, with no other?"""
    primary = primary_deployment(service)
    if primary is None or primary.get("taskDefinition") != task_definition_arn:
        return False
    return primary.get("rolloutState") == "COMPLETED" and len(_deployments(service)) == 1
