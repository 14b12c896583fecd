"""Which services another controller owns: refused before anything is touched."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_agent.core.controllers import decide_controller

TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/1"

#: (name, described service fields, owning controller or None, words the reason must hold)
CASES: list[tuple[str, dict[str, Any], str | None, tuple[str, ...]]] = [
    ("a service without deploymentController is ECS's rolling, ours", {}, None, ()),
    (
        "an explicit ECS controller with ROLLING is ours",
        {"deploymentController": {"type": "ECS"}, "deploymentConfiguration": {"strategy": "ROLLING"}},
        None,
        (),
    ),
    (
        "CodeDeploy's service is refused and says to use CodeDeploy",
        {"deploymentController": {"type": "CODE_DEPLOY"}},
        "CODE_DEPLOY",
        ("CodeDeploy", "ECS deployment controller"),
    ),
    (
        "an external controller's service is refused",
        {"deploymentController": {"type": "EXTERNAL"}},
        "EXTERNAL",
        ("external", "ECS deployment controller"),
    ),
    (
        "ECS native blue/green is refused",
        {"deploymentConfiguration": {"strategy": "BLUE_GREEN"}},
        "ECS_BLUE_GREEN",
        ("BLUE_GREEN", "ROLLING"),
    ),
    (
        "ECS native linear is refused",
        {"deploymentConfiguration": {"strategy": "LINEAR"}},
        "ECS_LINEAR",
        ("LINEAR",),
    ),
    (
        "ECS native canary is refused",
        {"deploymentConfiguration": {"strategy": "CANARY"}},
        "ECS_CANARY",
        ("CANARY",),
    ),
    (
        "a load balancer with advancedConfiguration is ECS blue/green's",
        {"loadBalancers": [{"targetGroupArn": TG, "advancedConfiguration": {"alternateTargetGroupArn": TG}}]},
        "ECS_BLUE_GREEN",
        ("advancedConfiguration",),
    ),
    (
        "a load balancer without advancedConfiguration is ours",
        {"loadBalancers": [{"targetGroupArn": TG, "containerName": "web", "containerPort": 80}]},
        None,
        (),
    ),
    ("an Express service is refused", {"resourceManagementType": "ECS"}, "EXPRESS", ("Express",)),
    ("a customer-managed service is ours", {"resourceManagementType": "CUSTOMER"}, None, ()),
]


@pytest.mark.parametrize(("fields", "controller", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_controller(fields: dict[str, Any], controller: str | None, words: tuple[str, ...]) -> None:
    found = decide_controller({"serviceName": "web", **fields})
    if controller is None:
        assert found is None
        return
    assert found is not None
    assert found.controller == controller
    for word in words:
        assert word in found.problem
    assert found.as_dict()["field"] == "service_name"
