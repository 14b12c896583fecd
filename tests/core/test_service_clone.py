"""plan_clone: the temporary green/canary service is a faithful copy of the original. Pure."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from deploy_agent.core.service_clone import TEMPORARY_TAG, plan_clone

BLUE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/1"
GREEN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-green/2"
TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:8"
NETWORK = {
    "awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}
}
CONNECT = {
    "enabled": True,
    "namespace": "arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-1",
    "services": [{"portName": "http", "discoveryName": "web", "clientAliases": [{"port": 80}]}],
    "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/sc/web"}},
}


def described(**changes: Any) -> dict[str, Any]:
    """A DescribeServices answer for a Fargate Spot service with everything a user may set."""
    service: dict[str, Any] = {
        "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/app/web",
        "serviceName": "web",
        "status": "ACTIVE",
        "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}],
        "platformVersion": "LATEST",
        "networkConfiguration": NETWORK,
        "loadBalancers": [{"targetGroupArn": BLUE, "containerName": "web", "containerPort": 8080}],
        "serviceRegistries": [
            {"registryArn": "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-1"}
        ],
        "placementConstraints": [],
        "placementStrategy": [],
        "healthCheckGracePeriodSeconds": 60,
        "propagateTags": "SERVICE",
        "enableECSManagedTags": True,
        "enableExecuteCommand": True,
        "tags": [{"key": "team", "value": "payments"}, {"key": "aws:ecs:clusterName", "value": "app"}],
        "deployments": [{"status": "PRIMARY", "serviceConnectConfiguration": CONNECT}],
        "deploymentConfiguration": {"maximumPercent": 150, "minimumHealthyPercent": 50},
    }
    service.update(changes)
    return service


def test_everything_the_original_runs_with_is_copied() -> None:
    """Capacity providers, network, platform, registries, tags, exec, grace period: all as the original."""
    kwargs = plan_clone(described(), "web-green-d1", TD, GREEN, 2)
    assert kwargs["capacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}
    ]
    assert "launchType" not in kwargs
    assert kwargs["networkConfiguration"] == NETWORK
    assert kwargs["platformVersion"] == "LATEST"
    assert kwargs["serviceRegistries"] == described()["serviceRegistries"]
    assert (kwargs["propagateTags"], kwargs["enableECSManagedTags"], kwargs["enableExecuteCommand"]) == (
        "SERVICE",
        True,
        True,
    )
    assert kwargs["healthCheckGracePeriodSeconds"] == 60
    assert kwargs["tags"] == [{"key": "team", "value": "payments"}, TEMPORARY_TAG]
    assert kwargs["loadBalancers"] == [
        {"targetGroupArn": GREEN, "containerName": "web", "containerPort": 8080}
    ]
    assert "placementStrategy" not in kwargs  # empty lists are not sent


def test_green_is_a_service_connect_client_without_the_originals_endpoints() -> None:
    """Namespace and logging are copied; the discovery names the original serves are not."""
    connect = plan_clone(described(), "g", TD, GREEN, 1)["serviceConnectConfiguration"]
    assert connect == {
        "enabled": True,
        "namespace": CONNECT["namespace"],
        "logConfiguration": CONNECT["logConfiguration"],
    }


def test_ecs_marks_a_failing_green_failed_and_create_is_idempotent() -> None:
    """The circuit breaker is on without rollback; the client token is the same for the same name, <= 36."""
    first = plan_clone(described(), "web-green-d1", TD, GREEN, 1)
    again = plan_clone(described(), "web-green-d1", TD, GREEN, 1)
    other = plan_clone(described(), "web-green-d2", TD, GREEN, 1)
    assert first["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": True, "rollback": False}
    }
    assert first["clientToken"] == again["clientToken"] != other["clientToken"]
    assert len(first["clientToken"]) <= 36


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"capacityProviderStrategy": [], "launchType": "FARGATE"}, ("FARGATE", None), id="a launch type"
        ),
        pytest.param(
            {"capacityProviderStrategy": None, "launchType": "EC2"}, ("EC2", None), id="an EC2 service"
        ),
    ],
)
def test_launch_type_only_without_capacity_providers(
    changes: dict[str, Any], expected: tuple[Any, Any]
) -> None:
    """capacityProviderStrategy xor launchType: CreateService refuses both."""
    kwargs = plan_clone(described(**changes), "g", TD, GREEN, 1)
    assert (kwargs.get("launchType"), kwargs.get("capacityProviderStrategy")) == expected


def test_the_arguments_are_valid_for_create_service() -> None:
    """botocore's own validator accepts the planned arguments (the API's shapes and enums)."""
    model = get_session().get_service_model("ecs").operation_model("CreateService").input_shape
    report = ParamValidator().validate(
        {"cluster": "app", **plan_clone(described(), "g", TD, GREEN, 1)}, model
    )
    assert not report.has_errors(), report.generate_report()
