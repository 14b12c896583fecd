"""The temporary (green, canary, linear) service as a faithful copy of the original. Pure."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

#: the tag that marks our temporary services
TEMPORARY_TAG = {"key": "deploy-agent:temporary", "value": "true"}
#: settings DescribeServices shows that CreateService takes unchanged (when the service has them)
_CLONED = (
    "networkConfiguration",
    "platformVersion",
    "placementConstraints",
    "placementStrategy",
    "serviceRegistries",
    "propagateTags",
    "enableECSManagedTags",
    "enableExecuteCommand",
    "healthCheckGracePeriodSeconds",
    "availabilityZoneRebalancing",
)


def plan_clone(
    template: Mapping[str, Any],
    name: str,
    task_definition_arn: str,
    target_group_arn: str,
    desired_count: int,
) -> dict[str, Any]:
    """Return CreateService's arguments (without ``cluster``) for a copy of the described ``template``. Pure.

    * ``capacityProviderStrategy`` xor ``launchType``: CreateService refuses both, and a service
      on capacity providers (FARGATE_SPOT, Managed Instances) shows no launchType.
    * Service Connect is read from the PRIMARY deployment (DescribeServices shows it only there)
      and copied as a *client*: same namespace and logging, so green reaches its dependencies,
      but without the ``services`` it serves, whose discovery names belong to the original (a
      second service cannot claim them, and green must not take the original's callers before
      it is verified).
    * tags: the original's (``aws:`` ones are ECS's own and cannot be set) plus ours.
    * the deployment circuit breaker is on without rollback, so ECS itself marks green's
      deployment FAILED when its tasks keep failing; ``failedTasks`` alone is no signal, it resets
      to 0 once any task runs (botocore's Deployment doc).
    * ``clientToken`` comes from ``name`` (which carries the deployment id): a CreateService sent
      again for the same temporary service (a crash, an eventually consistent MISSING) is
      idempotent. The API allows 36 characters, so it is a UUID5 of the name.
    """
    kwargs: dict[str, Any] = {
        "serviceName": name,
        "taskDefinition": task_definition_arn,
        "desiredCount": desired_count,
        "clientToken": str(uuid.uuid5(uuid.NAMESPACE_URL, f"deploy-agent:{name}")),
        "loadBalancers": [
            {k: v for k, v in lb.items() if k in ("containerName", "containerPort", "advancedConfiguration")}
            | {"targetGroupArn": target_group_arn}
            for lb in template.get("loadBalancers") or []
        ],
        "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": False}},
        "tags": [
            {"key": str(t["key"]), "value": str(t.get("value", ""))}
            for t in template.get("tags") or []
            if not str(t.get("key", "")).startswith("aws:") and t.get("key") != TEMPORARY_TAG["key"]
        ]
        + [dict(TEMPORARY_TAG)],
    }
    if template.get("capacityProviderStrategy"):
        kwargs["capacityProviderStrategy"] = copy.deepcopy(template["capacityProviderStrategy"])
    elif template.get("launchType"):
        kwargs["launchType"] = template["launchType"]
    for key in _CLONED:
        value = template.get(key)
        if value is not None and value != [] and value != "":
            kwargs[key] = copy.deepcopy(value)
    if not kwargs["loadBalancers"]:
        kwargs.pop("healthCheckGracePeriodSeconds", None)  # valid only with a load balancer
    connect = _service_connect(template)
    if connect is not None:
        kwargs["serviceConnectConfiguration"] = connect
    return kwargs


def _service_connect(template: Mapping[str, Any]) -> dict[str, Any] | None:
    primary = next(
        (d for d in template.get("deployments") or [] if d.get("status") == "PRIMARY"),
        None,
    )
    config = (primary or {}).get("serviceConnectConfiguration") or template.get("serviceConnectConfiguration")
    if not config or not config.get("enabled"):
        return None
    return {
        k: copy.deepcopy(v) for k, v in config.items() if k in ("enabled", "namespace", "logConfiguration")
    }
