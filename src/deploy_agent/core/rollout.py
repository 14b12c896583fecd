"""Verdicts on an ECS rolling deployment, read from a ``DescribeServices`` service dict.

We follow *our* deployment (by id once known, by task definition until then), never just
"the service is stable": a service that ECS rolled back is stable too, on the wrong revision.

ECS's circuit-breaker rollback comes in three shapes, all ``FAILED`` with ``ecs_rolled_back``:

- the long window: a new PRIMARY on the previous revision reads "ECS deployment circuit breaker:
  rolling back to deploymentId ..." while ours is still listed ACTIVE (or DRAINING), IN_PROGRESS,
  for minutes (the failed deployment ends FAILED once its tasks are gone);
- seen late: ours is FAILED or no longer listed, the rollback PRIMARY running or done;
- done before our first look: ours never seen, the service back on the previous revision in a
  deployment that did not exist before our UpdateService.

ECS's reads are eventually consistent: for a while after UpdateService, DescribeServices may answer
with the state from before it (docs.aws.amazon.com/AmazonECS/latest/APIReference/ "Eventual
consistency"). ``earlier_ids`` (the deployments listed before our UpdateService, taken from its
reply) tell such a stale read apart from a rollback: a PRIMARY among them is the past, not ECS's
answer to our deployment. The approach is aws-actions/amazon-ecs-deploy-task-definition#860's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class RolloutState(StrEnum):
    PENDING = "pending"  # our deployment is not visible yet (or the read predates our update)
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"  # ECS failed it (circuit breaker); see ``ecs_rolled_back``
    REPLACED = "replaced"  # another deployment (not ECS's rollback) took over


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


def ecs_time(value: object) -> datetime | None:
    """Return a time ECS answered (boto3 gives datetimes; a stored snapshot ISO strings), or None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def started_since(task: Mapping[str, Any], moment: datetime | None) -> bool:
    """Did the task (DescribeTasks' shape) start (or, not started, get created) at ``moment`` or
    after? A task with neither time counts as after."""
    if moment is None:
        return True
    started = ecs_time(task.get("startedAt") or task.get("createdAt"))
    return True if started is None else _as_utc(started) >= _as_utc(moment)


def stopped_order(task: Mapping[str, Any]) -> float:
    """Return a sort key for tasks by when they stopped (else stopping, started, created)."""
    moment = ecs_time(
        task.get("stoppedAt") or task.get("stoppingAt") or task.get("startedAt") or task.get("createdAt")
    )
    return moment.timestamp() if moment is not None else 0.0


def _as_utc(moment: datetime) -> datetime:
    # boto3 gives aware times; a naive one from a caller is taken to be UTC
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _deployments(service: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    return list(service.get("deployments") or [])


def find_deployment(
    service: Mapping[str, Any],
    deployment_id: str | None,
    task_definition_arn: str,
    earlier_ids: Collection[str] = (),
) -> Mapping[str, Any] | None:
    """Return our deployment: by id when we know it, else the newest new one on our task definition."""
    for dep in _deployments(service):
        if deployment_id is not None and dep.get("id") == deployment_id:
            return dep
    if deployment_id is None:
        for dep in _deployments(service):
            if dep.get("taskDefinition") == task_definition_arn and dep.get("id") not in earlier_ids:
                return dep
    return None


def primary_deployment(service: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Return the PRIMARY deployment of a service, if it has one."""
    for dep in _deployments(service):
        if dep.get("status") == "PRIMARY":
            return dep
    return None


def is_ecs_rollback(deployment: Mapping[str, Any] | None) -> bool:
    """Is this (PRIMARY) deployment ECS's own rollback (circuit breaker or alarms)?"""
    reason = str((deployment or {}).get("rolloutStateReason") or "")
    return "rolling back" in reason.lower()


def ecs_rollback_enabled(service: Mapping[str, Any]) -> bool:
    """Does the service's own deploymentConfiguration have ECS roll back a failed deployment?"""
    config = service.get("deploymentConfiguration") or {}
    breaker = config.get("deploymentCircuitBreaker") or {}
    alarms = config.get("alarms") or {}
    return bool(breaker.get("enable") and breaker.get("rollback")) or bool(
        alarms.get("enable") and alarms.get("rollback")
    )


def _counts(dep: Mapping[str, Any]) -> tuple[int, int, int]:
    return (
        int(dep.get("runningCount") or 0),
        int(dep.get("desiredCount") or 0),
        int(dep.get("failedTasks") or 0),
    )


def _rolled_back(
    ours: Mapping[str, Any] | None, primary: Mapping[str, Any], deployment_id: str | None
) -> RolloutVerdict:
    own = str(ours.get("rolloutStateReason") or "") if ours is not None else ""
    theirs = str(primary.get("rolloutStateReason") or "ECS rolled the service back to the previous revision")
    reason = f"{own.rstrip('.')}; {theirs}" if own and "in progress" not in own.lower() else theirs
    running, desired, failed = _counts(ours) if ours is not None else (0, 0, 0)
    dep_id = str(ours.get("id")) if ours is not None else deployment_id
    return RolloutVerdict(RolloutState.FAILED, dep_id, reason, True, running, desired, failed)


def assess_rollout(
    service: Mapping[str, Any],
    deployment_id: str | None,
    task_definition_arn: str,
    previous_task_definition_arn: str | None = None,
    *,
    hint: str | None = None,
    earlier_ids: Collection[str] = (),
) -> RolloutVerdict:
    """Return the verdict on our deployment of ``task_definition_arn``.

    ``deployment_id``: ours, confirmed by an earlier look; ``hint``: ours as UpdateService's reply
    named it (not yet seen in a look); ``earlier_ids``: the deployments listed before our update.
    """
    known = deployment_id or hint
    ours = find_deployment(service, known, task_definition_arn, earlier_ids)
    primary = primary_deployment(service)
    ours_id = str(ours.get("id")) if ours is not None else None
    if primary is not None and primary.get("id") in earlier_ids and ours_id != primary.get("id"):
        # The read is from before our UpdateService (eventual consistency): nothing to conclude.
        return RolloutVerdict(
            RolloutState.PENDING, deployment_id, "ECS still answers with the state before our update"
        )
    foreign_primary = primary is not None and primary.get("id") != ours_id
    if foreign_primary and primary is not None:
        new_on_previous = (
            previous_task_definition_arn is not None
            and primary.get("taskDefinition") == previous_task_definition_arn
            and (bool(earlier_ids) or deployment_id is not None)
        )
        ours_failed_or_gone = ours is None or ours.get("rolloutState") == "FAILED"
        if is_ecs_rollback(primary) and (ours is not None or known is not None or bool(earlier_ids)):
            return _rolled_back(ours, primary, known)
        if new_on_previous and ours_failed_or_gone and (ours is not None or known is not None):
            return _rolled_back(ours, primary, known)
    if ours is None:
        if known is None or (deployment_id is None and not earlier_ids):
            return RolloutVerdict(RolloutState.PENDING, None, "waiting for ECS to start the deployment")
        return RolloutVerdict(RolloutState.REPLACED, known, "another deployment replaced ours")
    running, desired, failed = _counts(ours)
    reason = str(ours.get("rolloutStateReason") or "")
    rollout = ours.get("rolloutState")
    assert ours_id is not None
    if rollout == "FAILED":
        # ECS rolls back a failed deployment itself when the service says so; the rollback's PRIMARY
        # may not be listed yet. Sending our own UpdateService then would fight it.
        rolled_back = ecs_rollback_enabled(service)
        return RolloutVerdict(RolloutState.FAILED, ours_id, reason, rolled_back, running, desired, failed)
    if ours.get("status") != "PRIMARY":
        return RolloutVerdict(
            RolloutState.REPLACED,
            ours_id,
            "another deployment replaced ours",
            False,
            running,
            desired,
            failed,
        )
    if rollout == "COMPLETED":
        return RolloutVerdict(RolloutState.COMPLETED, ours_id, reason, False, running, desired, failed)
    return RolloutVerdict(RolloutState.IN_PROGRESS, ours_id, reason, False, running, desired, failed)


def is_settled_on(service: Mapping[str, Any], task_definition_arn: str) -> bool:
    """Is the service's PRIMARY deployment on ``task_definition_arn`` and COMPLETED, with no other?"""
    primary = primary_deployment(service)
    if primary is None or primary.get("taskDefinition") != task_definition_arn:
        return False
    return primary.get("rolloutState") == "COMPLETED" and len(_deployments(service)) == 1
