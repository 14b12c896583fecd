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

#: fields of each entry of ``deployments`` that say how a rollout stands
_DEPLOYMENT_FIELDS = (
    "id",
    "status",
    "taskDefinition",
    "desiredCount",
    "pendingCount",
    "runningCount",
    "failedTasks",
    "rolloutState",
    "rolloutStateReason",
)


def fingerprint_service(service: Mapping[str, Any]) -> str:
    """Return a short digest of what in ``service`` (a DescribeServices entry) can change a verdict."""
    deployments = [{key: d.get(key) for key in _DEPLOYMENT_FIELDS} for d in service.get("deployments") or []]
    events = service.get("events") or []
    shape = {
        "status": service.get("status"),
        "taskDefinition": service.get("taskDefinition"),
        "counts": [service.get(k) for k in ("desiredCount", "runningCount", "pendingCount")],
        "deployments": deployments,
        "taskSets": [
            [t.get("id"), t.get("status"), t.get("stabilityStatus"), t.get("runningCount")]
            for t in service.get("taskSets") or []
        ],
        "currentServiceDeployment": service.get("currentServiceDeployment"),
        "event": events[0].get("id") if events else None,
    }
    return hashlib.blake2b(json.dumps(shape, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


def decide_changed(before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """Return the services whose fingerprint differs from ``before`` (new ones included), sorted."""
    return sorted(name for name, digest in now.items() if before.get(name) != digest)
