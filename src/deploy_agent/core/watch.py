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

from deploy_agent.core.rollout import is_ecs_rollback, primary_deployment

#: how a service's fingerprint starts after a deployment's own UpdateService (``updated_mark``): until
#: a look shows ECS's verdict, the watcher judges that service by ``is_verdict_news``
UPDATED = "updated:"
#: what a service's fingerprint reads while a deployment's UpdateService is on its way: nothing is
#: news until its reply marks the service (``updated_mark``)
UPDATING = "updating"
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


def decide_wake(before: str | None, service: Mapping[str, Any], fingerprint: str) -> tuple[bool | None, str]:
    """Return whether a look at ``service`` (``fingerprint``) wakes its deployment, and what to keep
    for the next look. ``before``: what the last look kept (None: no look yet, it only learns).

    The first of the pair is None (no wake), False (the service's own news: wakes any stage) or True
    (a task's news only: a stage waiting for ECS's verdict sleeps on). After our UpdateService the
    mark is kept, and only ``is_verdict_news`` is the service's news, until a look shows it; while
    the update is on its way (``UPDATING``) nothing is.
    """
    if before is None:
        return None, fingerprint
    if before == UPDATING:
        return None, before
    mark = read_updated_mark(before)
    if mark is not None:
        ours, last = mark
        if is_verdict_news(service, ours):
            return False, fingerprint
        # The first look after the update sees what it made; later moves are its tasks'.
        return (True if last and fingerprint != last else None), updated_mark(ours, fingerprint)
    if before == fingerprint:
        return None, fingerprint
    return task_news(before, fingerprint), fingerprint


def task_news(before: str, now: str) -> bool:
    """Return whether only the task part of a service's fingerprint moved from ``before`` to ``now``
    (a digest of another form, from an earlier version, counts as the service's own news)."""
    old_service, dot, _ = before.partition(".")
    return bool(dot) and old_service == now.partition(".")[0] and before != now


def updated_mark(ours: str, fingerprint: str = "") -> str:
    """Return the mark that stands for a service's fingerprint from its UpdateService (which started
    the deployment ``ours``, "" when its reply named none) until a look shows ECS's verdict; it
    carries the fingerprint of the last such look ("" before the first)."""
    return f"{UPDATED}{ours}|{fingerprint}"


def read_updated_mark(value: str) -> tuple[str, str] | None:
    """Return (our deployment id, the last look's fingerprint) of an ``updated_mark``, None for a
    fingerprint."""
    if not value.startswith(UPDATED):
        return None
    ours, _, fingerprint = value[len(UPDATED) :].rpartition("|")
    return ours, fingerprint


def is_verdict_news(service: Mapping[str, Any], ours: str) -> bool:
    """Return whether a look after our own UpdateService (which started the deployment ``ours``)
    shows more than our rollout under way.

    The new PRIMARY, IN_PROGRESS, is what the update itself made: a stage waiting for ECS's verdict
    already knows it (waking it for that cost every deployment a task run), and so is a read from
    before the update (ECS's reads are eventually consistent: ours is not listed yet). News is
    the rollout done or failed, ECS rolling back, another deployment taking over, no PRIMARY at all
    (task sets), the service going away. Without ``ours`` a PRIMARY other than IN_PROGRESS is news.
    """
    primary = primary_deployment(service)
    if primary is None or service.get("status") != "ACTIVE":
        return True
    deployments = service.get("deployments") or []
    if any(d.get("rolloutState") == "FAILED" for d in deployments) or is_ecs_rollback(primary):
        return True
    if ours and primary.get("id") != ours:
        return any(d.get("id") == ours for d in deployments)  # listed, no longer PRIMARY: replaced
    return primary.get("rolloutState") != "IN_PROGRESS"
