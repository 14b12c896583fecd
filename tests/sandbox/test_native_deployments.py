"""The sandbox plays ECS's native BLUE_GREEN / LINEAR / CANARY controller, through real boto3 calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests

from ecs_sandbox import NativeSetup, Sandbox, provision_native
from ecs_sandbox.load_balancer import TARGET_HEADER, target_group_name
from tests.support import wait_until

pytestmark = pytest.mark.integration

CLUSTER, SERVICE = "app", "web"


def _deploy(sandbox: Sandbox, setup: NativeSetup, image: str) -> str:
    """Register a revision running ``image``, UpdateService to it; return the new ServiceDeployment ARN."""
    ecs = sandbox.client("ecs")
    current = ecs.describe_task_definition(taskDefinition=setup.task_definition_arn)["taskDefinition"]
    kept = ("family", "networkMode", "requiresCompatibilities", "cpu", "memory")
    arn = ecs.register_task_definition(
        **{k: current[k] for k in kept if k in current},
        containerDefinitions=[{**c, "image": image} for c in current["containerDefinitions"]],
    )["taskDefinition"]["taskDefinitionArn"]
    before = {d["serviceDeploymentArn"] for d in _list(sandbox)}
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=arn)
    fresh = [d for d in _list(sandbox) if d["serviceDeploymentArn"] not in before]
    assert len(fresh) == 1, fresh
    return str(fresh[0]["serviceDeploymentArn"])


def _list(sandbox: Sandbox, **filters: Any) -> list[dict[str, Any]]:
    reply = sandbox.client("ecs").list_service_deployments(cluster=CLUSTER, service=SERVICE, **filters)
    return list(reply["serviceDeployments"])


def _describe(sandbox: Sandbox, arn: str) -> dict[str, Any]:
    reply = sandbox.client("ecs").describe_service_deployments(serviceDeploymentArns=[arn])
    return dict(reply["serviceDeployments"][0])


def _reaches(sandbox: Sandbox, arn: str, status: str, timeout: float = 40.0) -> dict[str, Any]:
    return wait_until(
        lambda: (d := _describe(sandbox, arn))["status"] == status and d,
        what=f"service deployment {status}",
        timeout=timeout,
    )


def _awaiting(sandbox: Sandbox, arn: str, timeout: float = 30.0) -> dict[str, Any]:
    """Return the deployment once a hook is AWAITING_ACTION."""
    return wait_until(
        lambda: (
            (d := _describe(sandbox, arn))["status"] == "IN_PROGRESS"
            and any(h["status"] == "AWAITING_ACTION" for h in d.get("lifecycleHookDetails", []))
            and d
        ),
        what="a hook awaiting action",
        timeout=timeout,
    )


def _served_by(url: str, requests_count: int = 40) -> Counter[str]:
    """Return how many of ``requests_count`` requests each target group served."""
    seen: Counter[str] = Counter()
    with requests.Session() as session:
        for _ in range(requests_count):
            response = session.get(f"{url}/version", timeout=5)
            assert response.status_code == 200, response.text
            seen[response.headers[TARGET_HEADER].rsplit("/", 1)[0]] += 1
    return seen


class TestBlueGreen:
    def test_blue_green_ends_successful_with_production_on_green(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """A BLUE_GREEN deployment walks to SUCCESSFUL; production traffic is then all on the green group."""
        setup = provision_native(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
        green = target_group_name(setup.alternate_target_group_arn)
        assert set(_served_by(setup.url)) == {target_group_name(setup.target_group_arn)}

        arn = _deploy(sandbox, setup, web_image("v2"))
        done = _reaches(sandbox, arn, "SUCCESSFUL")

        assert done["lifecycleStage"] == "CLEAN_UP"
        assert _served_by(setup.url) == Counter({green: 40})
        assert requests.get(f"{setup.url}/version", timeout=5).text.strip() == "v2"
        service = sandbox.client("ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        assert [(d["status"], d["rolloutState"]) for d in service["deployments"]] == [("PRIMARY", "COMPLETED")]
