"""ECS deployments and service events, in the shapes moto serializes (plain dicts on the Service).

Every write replaces a list rather than growing it in place, so a describe_services answered by
moto's server thread at the same moment never iterates a list that changes size.

``RolloutLog`` remembers when each deployment took each rolloutState (IN_PROGRESS when it was
created, then COMPLETED or FAILED), by the wall clock, so a benchmark can tell how long ECS itself
took from how long a deployer took to notice.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from moto.core.utils import utcnow

from .tasks import TaskRecord, is_gone

MAX_EVENTS = 100


@dataclass(frozen=True)
class RolloutConfig:
    """The service's deploymentConfiguration, with ECS's defaults filled in."""

    maximum_percent: int = 200
    minimum_healthy_percent: int = 100
    circuit_breaker: bool = False
    rollback: bool = False
    #: deploymentCircuitBreaker.resetOnHealthyTask: a healthy task resets failedTasks (AWS default true)
    reset_on_healthy_task: bool = True


def read_rollout_config(service: Any) -> RolloutConfig:
    """Return the rollout settings that update_service stored (create_service drops them in moto)."""
    config = getattr(service, "deployment_configuration", None) or {}
    breaker = config.get("deploymentCircuitBreaker") or {}
    return RolloutConfig(
        maximum_percent=int(config.get("maximumPercent", 200)),
        minimum_healthy_percent=int(config.get("minimumHealthyPercent", 100)),
        circuit_breaker=bool(breaker.get("enable", False)),
        rollback=bool(breaker.get("rollback", False)),
        reset_on_healthy_task=bool(breaker.get("resetOnHealthyTask", True)),
    )


def plan_task_bounds(desired: int, config: RolloutConfig) -> tuple[int, int]:
    """Return (most tasks allowed at once, fewest healthy tasks to keep) during a rollout."""
    most = desired * config.maximum_percent // 100
    fewest = math.ceil(desired * config.minimum_healthy_percent / 100)
    # ECS refuses settings that leave no room to move; give the rollout one task of room instead.
    return max(most, fewest + 1 if desired else 0), fewest


def circuit_breaker_threshold(desired: int, minimum: int = 3) -> int:
    """Return how many failed tasks trip the circuit breaker (ECS: 0.5 x desired, within [minimum, 200])."""
    return max(minimum, min(200, math.ceil(0.5 * desired)))


def plan_relaunch_delay(backoff_seconds: tuple[float, ...], consecutive_failures: int) -> float:
    """Return how long ECS waits before launching the next task after ``consecutive_failures`` in a row.

    ECS's service throttle logic: a service whose tasks keep failing to start has its relaunches
    spaced out by a growing delay (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/
    service-throttle-logic.html); the delays are the profile's, the last one repeats.
    """
    if consecutive_failures <= 0 or not backoff_seconds:
        return 0.0
    return float(backoff_seconds[min(consecutive_failures, len(backoff_seconds)) - 1])


def decide_rolled_back_deployment_failed(tasks_left: int, rollback_running: int, desired: int) -> bool:
    """Return whether a deployment the circuit breaker rolled back from is now FAILED.

    It stays listed (ACTIVE, IN_PROGRESS) while it is being replaced: until none of its tasks is left
    and the rollback deployment runs its desired count (field timeline: rollback started at 11m44s,
    the failed deployment FAILED at about 13m30s; wanews/pulumi-wait-for-ecs-deploy README).
    """
    return tasks_left == 0 and rollback_running >= desired


def new_deployment_id() -> str:
    """Return an id in ECS's shape: ``ecs-svc/`` and 19 digits."""
    return f"ecs-svc/{random.randint(10**18, 10**19 - 1)}"  # noqa: S311 - an id, not a secret


def new_deployment(service: Any, task_definition_arn: str, reason: str = "") -> dict[str, Any]:
    """Return a PRIMARY, IN_PROGRESS deployment dict for the service, keyed as moto keys its own."""
    deployment_id = new_deployment_id()
    now = utcnow()
    return {
        "createdAt": now,
        "desiredCount": service.desired_count,
        "failedTasks": 0,
        "id": deployment_id,
        "launchType": service.launch_type,
        "pendingCount": 0,
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": reason or f"ECS deployment {deployment_id} in progress.",
        "runningCount": 0,
        "platformVersion": service.platform_version,
        "networkConfiguration": service.network_configuration or None,
        "platformFamily": "EC2" if service.launch_type == "EC2" else "FARGATE",
        "status": "PRIMARY",
        "taskDefinition": task_definition_arn,
        "updatedAt": now,
    }


def push_deployment(service: Any, deployment: dict[str, Any]) -> None:
    """Put a new PRIMARY deployment first; the previous ones become ACTIVE."""
    for old in service.deployments:
        old["status"] = "ACTIVE"
    service.deployments = [deployment, *service.deployments]


def set_rollout(deployment: dict[str, Any], state: str, reason: str) -> None:
    """Set a deployment's rolloutState and its reason."""
    deployment["rolloutState"] = state
    deployment["rolloutStateReason"] = reason
    deployment["updatedAt"] = utcnow()


def set_counts(deployment: dict[str, Any], desired: int, running: int, pending: int) -> None:
    """Write a deployment's counts, touching updatedAt only when one changed."""
    counts = {"desiredCount": desired, "runningCount": running, "pendingCount": pending}
    if any(deployment.get(key) != value for key, value in counts.items()):
        deployment.update(counts)
        deployment["updatedAt"] = utcnow()


def recount(service: Any, records: list[TaskRecord], rolled_back_from: str | None = None) -> None:
    """Write true running/pending counts on the service and its deployments; drop finished ones.

    A deployment the circuit breaker rolled back from (``rolled_back_from``) stays listed with no
    task until the rollback completes, as in ECS.
    """
    present = [r for r in records if not is_gone(r)]
    primary_id = service.deployments[0]["id"] if service.deployments else None
    kept = []
    for deployment in service.deployments:
        mine = [r for r in present if r.deployment_id == deployment["id"]]
        if deployment["id"] not in (primary_id, rolled_back_from) and not mine:
            continue
        running = sum(r.task.last_status == "RUNNING" for r in mine)
        pending = sum(r.task.last_status in ("PROVISIONING", "PENDING") for r in mine)
        desired = (
            service.desired_count if deployment["id"] == primary_id else sum(not r.stopping for r in mine)
        )
        set_counts(deployment, desired, running, pending)
        kept.append(deployment)
    if len(kept) != len(service.deployments):
        service.deployments = kept
    service.running_count = sum(r.task.last_status == "RUNNING" for r in present)
    service.pending_count = sum(r.task.last_status in ("PROVISIONING", "PENDING") for r in present)


def add_events(service: Any, messages: list[str]) -> None:
    """Prepend service events (newest first), keeping at most MAX_EVENTS."""
    if not messages:
        return
    now = utcnow()
    fresh = [{"id": str(uuid.uuid4()), "createdAt": now, "message": m} for m in reversed(messages)]
    service.events = (fresh + list(service.events))[:MAX_EVENTS]


def task_list(prefix: str, task_ids: list[str], noun: str = "tasks") -> str:
    """Return ECS's event wording for a list of tasks: ``<prefix> N tasks: (task a) (task b).``"""
    return f"{prefix} {len(task_ids)} {noun}: " + " ".join(f"(task {t})" for t in task_ids) + "."


class RolloutTransition(NamedTuple):
    """One rolloutState a deployment took, and when (``time.time()``)."""

    at: float
    cluster: str
    service: str
    deployment_id: str
    state: str  # IN_PROGRESS (the deployment was created), COMPLETED or FAILED


class RolloutLog:
    """Thread-safe, append-only record of rolloutState transitions, oldest first."""

    def __init__(self) -> None:
        self._entries: list[RolloutTransition] = []
        self._lock = threading.Lock()

    def record(self, service: Any, deployment: dict[str, Any]) -> None:
        """Append the deployment's current rolloutState, stamped now."""
        entry = RolloutTransition(
            time.time(), str(service.cluster_name), str(service.name), str(deployment["id"]),
            str(deployment["rolloutState"]),
        )  # fmt: skip
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[RolloutTransition]:
        """Return a copy of every transition so far."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget every transition."""
        with self._lock:
            self._entries.clear()
