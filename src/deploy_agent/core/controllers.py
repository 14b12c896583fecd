"""Who drives a service's deployments: ECS's rolling controller (ours to drive), or someone else.

A service whose deployments another controller runs must not be deployed by UpdateService with a
new task definition: ECS refuses it for CODE_DEPLOY and EXTERNAL ("Unable to update task definition
on services with a CODE_DEPLOY deployment controller", botocore UpdateService doc), and for ECS's
own BLUE_GREEN / LINEAR / CANARY strategies (2025) the call *starts* ECS's blue/green, which then
moves the production listener itself and would fight ours
(docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html). An Express
service (``resourceManagementType`` ECS, botocore ECS model ``Service.resourceManagementType``) is
managed by ECS as a whole. All are refused before anything is touched, except that ECS's native
strategies are what the ``ecs_*`` strategies drive (``drives_native``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ForeignController:
    """Why the service is not ours to deploy: which controller owns it, and what to do instead."""

    controller: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        """Return the rejection shape of ``DeploymentResult.errors``."""
        return {"field": "service_name", "problem": self.problem}


def decide_controller(service: Mapping[str, Any], drives_native: bool = False) -> ForeignController | None:
    """Return why another controller owns this described service, or None when we may deploy it.

    ``drives_native``: the deployment is one of ECS's native strategies, whose services are ours.
    """
    name = str(service.get("serviceName") or "the service")
    controller = str((service.get("deploymentController") or {}).get("type") or "ECS")
    if controller == "CODE_DEPLOY":
        return ForeignController(
            "CODE_DEPLOY",
            f"{name} is deployed by AWS CodeDeploy (deploymentController CODE_DEPLOY); deploy it with "
            "CodeDeploy, or switch the service to the ECS deployment controller",
        )
    if controller == "EXTERNAL":
        return ForeignController(
            "EXTERNAL",
            f"{name} is deployed by an external controller (deploymentController EXTERNAL, task sets); "
            "deploy it with that controller, or switch the service to the ECS deployment controller",
        )
    if controller != "ECS":
        return ForeignController(
            controller,
            f"{name} has deploymentController {controller}, which deploy-agent does not drive; "
            "switch the service to the ECS deployment controller",
        )
    if str(service.get("resourceManagementType") or "CUSTOMER") == "ECS":
        return ForeignController(
            "EXPRESS",
            f"{name} is an ECS Express service (resourceManagementType ECS), managed by ECS as a whole; "
            "deploy it with UpdateExpressGatewayService",
        )
    if drives_native:
        return None
    strategy = str((service.get("deploymentConfiguration") or {}).get("strategy") or "ROLLING")
    if strategy != "ROLLING":
        return ForeignController(
            f"ECS_{strategy}",
            f"{name} uses ECS's native {strategy} deployments (deploymentConfiguration.strategy), which "
            "shift its load balancer themselves; deploy it with strategy ecs_blue_green, ecs_linear or "
            "ecs_canary, or set the service's strategy to ROLLING",
        )
    advanced = [lb for lb in service.get("loadBalancers") or [] if lb.get("advancedConfiguration")]
    if advanced:
        return ForeignController(
            "ECS_BLUE_GREEN",
            f"{name} has a load balancer with advancedConfiguration (an alternate target group for "
            "ECS's native blue/green); deploy it with strategy ecs_blue_green, ecs_linear or ecs_canary, "
            "or remove it",
        )
    return None
