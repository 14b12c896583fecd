"""What the cluster watcher compares: the parts of a service description that can change a verdict.

A deployment that waits on ECS (its rollout, a temporary service becoming stable) needs to look
again only when its service moved. The watcher describes every in-flight service of a cluster in
one batched call per ten services and wakes the deployments whose fingerprint changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: fields of each entry of ``deployments`` that say where a rollout stands: ECS's own verdict
_DEPLOYMENT_FIELDS = ("id", "status", "taskDefinition", "desiredCount", "rolloutState", "rolloutStateReason")
#: fields of each entry of ``deployments`` that move as its tasks come and go
_DEPLOYMENT_TASK_FIELDS = ("pendingCount", "runningCount", "failedTasks")


def fingerprint_service(service: Mapping[str, Any]) -> str:
    """Return a short digest of what in ``service`` (a DescribeServices entry) can change a verdict:
    two parts, ``SERVICE.TASKS``. The first moves with the service and its deployments (status,
    revision, rollout state: what ECS's service deployment and service action events announce), the
    second with its tasks (counts, failed tasks, the latest service event: what task state change
    events announce), so a stage that waits only for ECS's verdict (``Progress.wait(...,
    quiet_tasks=True)``) is not woken by every task of the rollout (``task_news``)."""
    deployments = service.get("deployments") or []
    events = service.get("events") or []
    task_sets = service.get("taskSets") or []
    service_part = {
        "status": service.get("status"),
        "taskDefinition": service.get("taskDefinition"),
        "desiredCount": service.get("desiredCount"),
        "deployments": [{key: d.get(key) for key in _DEPLOYMENT_FIELDS} for d in deployments],
        "taskSets": [[t.get("id"), t.get("status"), t.get("stabilityStatus")] for t in task_sets],
        "currentServiceDeployment": service.get("currentServiceDeployment"),
    }
    tasks_part = {
        "counts": [service.get(k) for k in ("runningCount", "pendingCount")],
        "deployments": [[d.get(key) for key in _DEPLOYMENT_TASK_FIELDS] for d in deployments],
        "taskSets": [t.get("runningCount") for t in task_sets],
        "event": events[0].get("id") if events else None,
    }
    return f"{_digest(service_part)}.{_digest(tasks_part)}"


def _digest(shape: Mapping[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(shape, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


def decide_changed(before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """Return the services whose fingerprint differs from ``before`` (new ones included), sorted."""
    return sorted(name for name, digest in now.items() if before.get(name) != digest)


def task_news(before: str, now: str) -> bool:
    """Return whether only the task part of a service's fingerprint moved from ``before`` to ``now``
    (a digest of another form, from an earlier version, counts as the service's own news)."""
    old_service, dot, _ = before.partition(".")
    return bool(dot) and old_service == now.partition(".")[0] and before != now
