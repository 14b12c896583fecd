"""The sandbox plays ECS: real containers, real health checks, real traffic through the local ALB."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import docker
import pytest
import requests

from ecs_sandbox import ProvisionedService, Sandbox, provision_service, wait_for_rollout
from ecs_sandbox.containers import LABEL
from tests.support import wait_until

pytestmark = pytest.mark.integration

CLUSTER, SERVICE = "app", "web"


def _register_revision(sandbox: Sandbox, image: str) -> str:
    ecs = sandbox.client("ecs")
    current = ecs.describe_task_definition(taskDefinition=SERVICE)["taskDefinition"]
    containers = [{**c, "image": image} for c in current["containerDefinitions"]]
    return str(
        ecs.register_task_definition(
            family=SERVICE,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=containers,
        )["taskDefinition"]["taskDefinitionArn"]
    )


def _service(sandbox: Sandbox) -> dict[str, Any]:
    return dict(sandbox.client("ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0])


def _stopped_tasks(sandbox: Sandbox, deployment_id: str | None = None) -> list[dict[str, Any]]:
    ecs = sandbox.client("ecs")
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE, desiredStatus="STOPPED")["taskArns"]
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if deployment_id is None or t["startedBy"] == deployment_id]


def _provision(sandbox: Sandbox, image: str, **config: Any) -> ProvisionedService:
    return provision_service(sandbox, CLUSTER, SERVICE, image, desired_count=2, timeout_seconds=30, **config)


def _deploy(sandbox: Sandbox, image: str, breaker: dict[str, bool] | None = None) -> tuple[str, str]:
    """Register a revision with the image, update the service to it; return (td arn, deployment id)."""
    arn = _register_revision(sandbox, image)
    config = {"maximumPercent": 200, "minimumHealthyPercent": 100}
    if breaker is not None:
        config["deploymentCircuitBreaker"] = breaker  # type: ignore[assignment]
    reply = sandbox.client("ecs").update_service(
        cluster=CLUSTER, service=SERVICE, taskDefinition=arn, deploymentConfiguration=config
    )["service"]
    primary = reply["deployments"][0]
    assert primary["taskDefinition"] == arn
    assert primary["status"] == "PRIMARY"
    return arn, str(primary["id"])


def _running_containers(client: docker.DockerClient, sandbox: Sandbox) -> list[Any]:
    """Return this sandbox's running containers of the service (other sandboxes share the engine)."""
    labels = [f"deploy-agent.service={SERVICE}", f"{LABEL}={sandbox.scheduler.containers.instance}"]
    return client.containers.list(filters={"label": labels, "status": "running"}, ignore_removed=True)


class TestFirstDeployment:
    def test_provisioned_service_runs_two_tasks_behind_the_listener(
        self, sandbox: Sandbox, web_image: Callable[..., str], docker_client: docker.DockerClient
    ) -> None:
        """provision_service ends with one COMPLETED deployment, 2 running containers, /version via the LB."""
        provisioned = _provision(sandbox, web_image("v1"))
        service = _service(sandbox)
        assert [d["rolloutState"] for d in service["deployments"]] == ["COMPLETED"]
        assert (service["runningCount"], service["pendingCount"]) == (2, 0)
        assert len(_running_containers(docker_client, sandbox)) == 2
        assert requests.get(f"{provisioned.url}/version", timeout=5).text.strip() == "v1"
        health = sandbox.client("elbv2").describe_target_health(TargetGroupArn=provisioned.target_group_arn)
        assert [t["TargetHealth"]["State"] for t in health["TargetHealthDescriptions"]] == [
            "healthy",
            "healthy",
        ]
        assert any("has reached a steady state" in e["message"] for e in service["events"])


class TestRollingUpdate:
    def test_new_task_definition_rolls_out_and_replaces_old_tasks(
        self, sandbox: Sandbox, web_image: Callable[..., str], docker_client: docker.DockerClient
    ) -> None:
        """update_service to a new revision adds a PRIMARY that completes, stops old tasks, serves v2."""
        provisioned = _provision(sandbox, web_image("v1"))
        old_id = _service(sandbox)["deployments"][0]["id"]
        statuses: Counter[int] = Counter()
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                statuses[requests.get(f"{provisioned.url}/version", timeout=5).status_code] += 1

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            arn, new_id = _deploy(sandbox, web_image("v2"))
            during = _service(sandbox)["deployments"]
            assert [d["status"] for d in during] == ["PRIMARY", "ACTIVE"]
            service = wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=30)
        finally:
            done.set()
            poller.join()
        print(f"status codes through the LB during the swap: {dict(statuses)}")
        assert service["deployments"][0]["id"] == new_id
        assert service["taskDefinition"] == arn
        stopped = wait_until(
            lambda: len(_stopped_tasks(sandbox, old_id)) == 2 and _stopped_tasks(sandbox, old_id),
            what="the two old tasks to stop",
        )
        assert {t["stopCode"] for t in stopped} == {"ServiceSchedulerInitiated"}
        assert len(_running_containers(docker_client, sandbox)) == 2
        assert requests.get(f"{provisioned.url}/version", timeout=5).text.strip() == "v2"


class TestFailures:
    def test_crashing_release_trips_the_circuit_breaker_and_rolls_back(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Crashing tasks count up to the threshold, the deployment FAILS and ECS rolls back."""
        provisioned = _provision(sandbox, web_image("v1"))
        good = _service(sandbox)["taskDefinition"]
        _, bad_id = _deploy(sandbox, web_image("v2", "crash"), {"enable": True, "rollback": True})
        failed = wait_until(
            lambda: next(
                (
                    d
                    for d in _service(sandbox)["deployments"]
                    if d["id"] == bad_id and d["rolloutState"] == "FAILED"
                ),
                None,
            ),
            what="the circuit breaker",
        )
        assert failed["failedTasks"] >= 3
        assert failed["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
        service = wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=30)
        assert service["taskDefinition"] == good
        assert service["deployments"][0]["id"] != bad_id
        stopped = _stopped_tasks(sandbox, bad_id)
        # Tasks of the failed deployment that had not crashed yet are stopped by the rollback itself.
        crashed = [t for t in stopped if t["stopCode"] == "EssentialContainerExited"]
        assert len(crashed) >= 3
        assert {t["stoppedReason"] for t in crashed} == {"Essential container in task exited"}
        assert {t["containers"][0]["exitCode"] for t in crashed} == {3}
        assert requests.get(f"{provisioned.url}/version", timeout=5).text.strip() == "v1"

    def test_unhealthy_release_fails_elb_health_checks(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Tasks failing the target group's checks show unhealthy and stop with the ELB reason."""
        provisioned = _provision(sandbox, web_image("v1"))
        elbv2 = sandbox.client("elbv2")
        _, bad_id = _deploy(sandbox, web_image("v2", "unhealthy"), {"enable": True, "rollback": True})

        def unhealthy_seen() -> bool:
            health = elbv2.describe_target_health(TargetGroupArn=provisioned.target_group_arn)
            return any(t["TargetHealth"]["State"] == "unhealthy" for t in health["TargetHealthDescriptions"])

        wait_until(unhealthy_seen, what="an unhealthy target")
        stopped = wait_until(lambda: _stopped_tasks(sandbox, bad_id), what="a stopped task")
        reason = f"Task failed ELB health checks in (target-group {provisioned.target_group_arn})"
        assert {t["stoppedReason"] for t in stopped} == {reason}
        assert {t["stopCode"] for t in stopped} == {"ServiceSchedulerInitiated"}

    def test_without_circuit_breaker_a_crashing_release_is_stuck(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Without the circuit breaker, failed tasks keep being replaced; the deployment stays IN_PROGRESS."""
        provisioned = _provision(sandbox, web_image("v1"))
        _, bad_id = _deploy(sandbox, web_image("v2", "crash"), {"enable": False, "rollback": False})
        stuck = wait_until(
            lambda: next(
                (d for d in _service(sandbox)["deployments"] if d["id"] == bad_id and d["failedTasks"] >= 5),
                None,
            ),
            what="failed tasks to pile up",
        )
        assert stuck["rolloutState"] == "IN_PROGRESS"
        assert stuck["status"] == "PRIMARY"
        assert [d["runningCount"] for d in _service(sandbox)["deployments"]][1] == 2
        assert requests.get(f"{provisioned.url}/version", timeout=5).text.strip() == "v1"
