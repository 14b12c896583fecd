"""The events ECS sends to EventBridge, put on moto's default event bus as the scheduler plays ECS.

ECS always sends them; EventBridge delivers one only where a rule matches it (moto's rules deliver
to SQS, CloudWatch Logs, other buses). Nothing is delivered while no rule matches, so emitting is
always on. The shapes are AWS's (source ``aws.ecs``; ``resources``: the service ARN, or the task ARN):

- "ECS Deployment State Change": SERVICE_DEPLOYMENT_IN_PROGRESS (a new deployment, a circuit-breaker
  rollback too, told apart by ``reason``), SERVICE_DEPLOYMENT_COMPLETED, SERVICE_DEPLOYMENT_FAILED;
  detail ``eventType``, ``eventName``, ``deploymentId``, ``updatedAt``, ``reason``
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html);
- "ECS Service Action": SERVICE_STEADY_STATE (INFO), SERVICE_TASK_START_IMPAIRED (WARN); detail
  ``eventType``, ``eventName``, ``clusterArn``, ``createdAt``
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_events.html);
- "ECS Task State Change": a task's ``lastStatus`` changed; detail is the task as DescribeTasks
  shows it (``clusterArn``, ``group`` "service:<name>", ``lastStatus``, ``desiredStatus``,
  ``startedBy`` the deployment id, ``stoppedReason``, ``stopCode``, ``version``, ...)
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html).

Emulated loosely: one event per transition the sandbox plays, never a duplicate or a late one
(EventBridge delivers at least once and in no particular order); ECS's many other event names
(SERVICE_DESIRED_COUNT_UPDATED, TASKS_STOPPED, placement failures) are not sent.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from moto.backends import get_backend

from .tasks import TaskRecord

log = logging.getLogger(__name__)

SOURCE = "aws.ecs"
DEPLOYMENT_STATE_CHANGE = "ECS Deployment State Change"
SERVICE_ACTION = "ECS Service Action"
TASK_STATE_CHANGE = "ECS Task State Change"

_DEPLOYMENT_EVENTS = {
    "IN_PROGRESS": ("INFO", "SERVICE_DEPLOYMENT_IN_PROGRESS"),
    "COMPLETED": ("INFO", "SERVICE_DEPLOYMENT_COMPLETED"),
    "FAILED": ("ERROR", "SERVICE_DEPLOYMENT_FAILED"),
}
_SERVICE_ACTIONS = {"SERVICE_STEADY_STATE": "INFO", "SERVICE_TASK_START_IMPAIRED": "WARN"}


def _iso(moment: Any) -> str:
    """ECS's timestamps in events: ISO 8601, milliseconds, Z."""
    if isinstance(moment, datetime):
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return str(moment or "")


def deployment_entry(service: Any, deployment: dict[str, Any]) -> dict[str, Any] | None:
    """Return the PutEvents entry ECS sends for the deployment's rolloutState (None for others)."""
    known = _DEPLOYMENT_EVENTS.get(str(deployment.get("rolloutState")))
    if known is None:
        return None
    event_type, name = known
    detail = {
        "eventType": event_type,
        "eventName": name,
        "deploymentId": str(deployment["id"]),
        "updatedAt": _iso(deployment.get("updatedAt")),
        "reason": str(deployment.get("rolloutStateReason") or ""),
    }
    return _entry(DEPLOYMENT_STATE_CHANGE, [str(service.arn)], detail)


def service_action_entry(service: Any, name: str, at: datetime) -> dict[str, Any]:
    """Return the PutEvents entry of the service action ``name`` (SERVICE_STEADY_STATE, ...)."""
    detail = {
        "eventType": _SERVICE_ACTIONS.get(name, "INFO"),
        "eventName": name,
        "clusterArn": str(service.cluster_arn),
        "createdAt": _iso(at),
    }
    return _entry(SERVICE_ACTION, [str(service.arn)], detail)


def task_entry(task: Any, version: int) -> dict[str, Any]:
    """Return the PutEvents entry of a task whose lastStatus changed (detail: the task, as described)."""
    detail: dict[str, Any] = {
        "clusterArn": str(task.cluster_arn),
        "taskArn": str(task.task_arn),
        "taskDefinitionArn": str(task.task_definition_arn),
        "group": str(task.group or ""),
        "startedBy": str(task.started_by or ""),
        "lastStatus": str(task.last_status),
        "desiredStatus": str(task.desired_status),
        "launchType": str(task.launch_type or "FARGATE"),
        "createdAt": _iso(getattr(task, "created_at", None)),
        "version": version,
        "containers": [
            {
                "name": str(c.name),
                "lastStatus": str(getattr(c, "last_status", None) or task.last_status),
                **({"exitCode": c.exitCode} if getattr(c, "exitCode", None) is not None else {}),
            }
            for c in task.containers
        ],
    }
    if task.last_status in ("DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"):
        detail["stoppedReason"] = str(task.stopped_reason or "")
        detail["stopCode"] = str(getattr(task, "stop_code", None) or "")
    return _entry(TASK_STATE_CHANGE, [str(task.task_arn)], detail)


def _entry(detail_type: str, resources: list[str], detail: dict[str, Any]) -> dict[str, Any]:
    return {"Source": SOURCE, "DetailType": detail_type, "Resources": resources, "Detail": json.dumps(detail)}


def publish(account: str, region: str, entries: Iterable[dict[str, Any] | None]) -> None:
    """Put the entries on moto's default event bus of the account and region (in-process, no HTTP).

    Never raises: a sandbox that cannot deliver an event behaves like AWS losing one.
    """
    batch = [e for e in entries if e is not None]
    if not batch:
        return
    try:
        backend = get_backend("events")[account][region]
        for start in range(0, len(batch), 10):  # PutEvents takes at most 10 entries
            backend.put_events(batch[start : start + 10])
    except Exception:
        log.exception("sandbox: could not put %d ECS event(s) on the event bus", len(batch))


def publish_for(service: Any, entries: Iterable[dict[str, Any] | None]) -> None:
    """Put the entries on the event bus of the service's account and region (read from its ARN)."""
    parts = str(service.arn).split(":")
    publish(parts[4], parts[3], entries)


class TaskEventWatch:
    """Sends "ECS Task State Change" for each task whose lastStatus changed since the last look."""

    def __init__(self, account: str) -> None:
        self.account = account
        self._seen: dict[str, tuple[str, int]] = {}  # task ARN -> (lastStatus, version)
        self._lock = threading.Lock()

    def observe(self, records: Iterable[TaskRecord]) -> None:
        """Compare each task's lastStatus with the last one sent; send the changes."""
        by_region: dict[str, list[dict[str, Any] | None]] = {}
        with self._lock:
            for record in records:
                status = str(record.task.last_status)
                seen = self._seen.get(record.task_arn)
                if seen is not None and seen[0] == status:
                    continue
                version = 1 if seen is None else seen[1] + 1
                self._seen[record.task_arn] = (status, version)
                by_region.setdefault(record.region, []).append(task_entry(record.task, version))
        for region, entries in by_region.items():
            publish(self.account, region, entries)

    def keep_only(self, task_arns: Iterable[str]) -> None:
        """Forget the tasks not named (the scheduler dropped them: stopped, they never change again)."""
        kept = set(task_arns)
        with self._lock:
            self._seen = {arn: seen for arn, seen in self._seen.items() if arn in kept}

    def clear(self) -> None:
        """Forget every task (after a moto reset)."""
        with self._lock:
            self._seen.clear()
