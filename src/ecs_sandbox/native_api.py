"""The service-deployment APIs moto lacks, and the native-strategy checks on Create/UpdateService.

``moto_patches`` installs ``answer`` as moto's ECS response methods for ListServiceDeployments,
DescribeServiceDeployments, DescribeServiceRevisions, ContinueServiceDeployment and
StopServiceDeployment (botocore ecs 2014-11-13 shapes; https://docs.aws.amazon.com/AmazonECS/latest/
APIReference/API_ListServiceDeployments.html and its siblings), and calls ``check_create`` /
``check_update`` before moto's CreateService / UpdateService while the AWS rules are on. The answers
come from the scheduler's ``NativeController``; with no scheduler running, the calls fail with
UnsupportedFeatureException, as for a feature the region lacks.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from typing import Any

from moto.core.responses import ActionResult
from moto.ecs.exceptions import ECSException, InvalidParameterException

from .native_config import is_native, load_balancer_refusal, shape_refusal
from .native_controller import NativeController
from .native_records import ServiceDeployment
from .native_traffic import forwards_to

OPERATIONS = (
    "list_service_deployments",
    "describe_service_deployments",
    "describe_service_revisions",
    "continue_service_deployment",
    "stop_service_deployment",
)
_MAX_ARNS = 20  # DescribeServiceDeployments: "You can specify a maximum of 20 ARNs."


def _refuse(
    config: dict[str, Any] | None, load_balancers: list[dict[str, Any]], account: str, region: str
) -> None:
    refusal = shape_refusal(config or {})
    if refusal is None and is_native(config):
        refusal = load_balancer_refusal(load_balancers, lambda arn: forwards_to(account, region, arn))
    if refusal:
        raise InvalidParameterException(refusal)


def check_create(account: str, region: str, params: dict[str, Any]) -> None:
    """Raise ECS's InvalidParameterException for a native configuration ECS would refuse."""
    controller = (params.get("deploymentController") or {}).get("type", "ECS")
    config = params.get("deploymentConfiguration")
    if is_native(config) and controller != "ECS":
        raise InvalidParameterException(
            "The BLUE_GREEN, LINEAR and CANARY strategies need the ECS deployment controller."
        )
    _refuse(config, params.get("loadBalancers") or [], account, region)


def check_update(account: str, region: str, service: Any, params: dict[str, Any]) -> None:
    """Raise for an UpdateService whose resulting configuration ECS would refuse."""
    config = params.get("deploymentConfiguration", getattr(service, "deployment_configuration", None))
    balancers = params.get("loadBalancers", service.load_balancers)
    if "deploymentConfiguration" in params or "loadBalancers" in params:
        _refuse(config, balancers or [], account, region)


def _epoch(value: Any) -> float:
    return float(calendar.timegm(value.utctimetuple())) if hasattr(value, "utctimetuple") else float(value)


def _listed(
    controller: NativeController, region: str, params: dict[str, Any]
) -> tuple[list[ServiceDeployment], str | None]:
    cluster = str(params.get("cluster") or "default").split("/")[-1]
    service = str(params["service"]).split("/")[-1]
    found = list(reversed(controller.deployments_of(region, cluster, service)))  # newest first
    wanted = params.get("status") or []
    created = params.get("createdAt") or {}
    found = [
        d
        for d in found
        if (not wanted or d.status in wanted)
        and ("after" not in created or _epoch(d.created_at) >= _epoch(created["after"]))
        and ("before" not in created or _epoch(d.created_at) <= _epoch(created["before"]))
    ]
    start = int(params.get("nextToken") or 0)
    size = int(params.get("maxResults") or 20)
    if not 1 <= size <= 100:
        raise InvalidParameterException("maxResults must be between 1 and 100.")
    page = found[start : start + size]
    return page, (str(start + size) if start + size < len(found) else None)


def _arns(params: dict[str, Any], member: str) -> Sequence[str]:
    arns = params.get(member) or []
    if not arns or len(arns) > _MAX_ARNS:
        raise InvalidParameterException(f"{member} must list between 1 and {_MAX_ARNS} ARNs.")
    return [str(a) for a in arns]


def answer(operation: str, response: Any, controllers: Sequence[NativeController]) -> ActionResult:
    """Answer one service-deployment operation from the running scheduler's controller."""
    if not controllers:
        raise ECSException("UnsupportedFeatureException", "Service deployments are not available.")
    controller = controllers[0]
    params: dict[str, Any] = response._get_params()
    region = str(response.region)
    with controller.lock:
        if operation == "list_service_deployments":
            backend = response.ecs_backend
            cluster = str(params.get("cluster") or "default").split("/")[-1]
            backend._get_service(cluster, str(params["service"]).split("/")[-1])  # Service/ClusterNotFound
            page, token = _listed(controller, region, params)
            result: dict[str, Any] = {"serviceDeployments": [d.brief() for d in page]}
            if token:
                result["nextToken"] = token
            return ActionResult(result)
        if operation == "describe_service_deployments":
            arns = _arns(params, "serviceDeploymentArns")
            counts = controller.task_counts
            found = [controller.deployments[a] for a in arns if a in controller.deployments]
            return ActionResult(
                {
                    "serviceDeployments": [
                        d.to_api(lambda r: counts.get(r.ecs_deployment_id, (0, 0, 0))) for d in found
                    ],
                    "failures": [
                        {"arn": a, "reason": "MISSING"} for a in arns if a not in controller.deployments
                    ],
                }
            )
        if operation == "describe_service_revisions":
            arns = _arns(params, "serviceRevisionArns")
            return ActionResult(
                {
                    "serviceRevisions": [
                        controller.revisions[a].to_api() for a in arns if a in controller.revisions
                    ],
                    "failures": [
                        {"arn": a, "reason": "MISSING"} for a in arns if a not in controller.revisions
                    ],
                }
            )
    arn = str(params["serviceDeploymentArn"])
    if operation == "continue_service_deployment":
        action = str(params.get("action") or "CONTINUE")  # "the default action is CONTINUE"
        controller.continue_deployment(arn, str(params["hookId"]), action)
    elif operation == "stop_service_deployment":
        controller.stop_deployment(arn, str(params.get("stopType") or "ROLLBACK"))
    return ActionResult({"serviceDeploymentArn": arn})
