"""The sandbox sends ECS's events to EventBridge; moto's rules deliver them to SQS (``ecs_events``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from ecs_sandbox import Sandbox, provision_service, wait_for_rollout
from tests.support import wait_until

pytestmark = pytest.mark.integration

CLUSTER, SERVICE = "events", "web"
PATTERN = {
    "source": ["aws.ecs"],
    "detail-type": ["ECS Deployment State Change", "ECS Service Action", "ECS Task State Change"],
}


def _queue_with_rule(sandbox: Sandbox, rule: str = "ecs-to-queue") -> str:
    """Return a queue that a rule on the default bus fills with ECS's three event kinds."""
    sqs, events = sandbox.client("sqs"), sandbox.client("events")
    url = str(sqs.create_queue(QueueName=rule)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=rule, EventPattern=json.dumps(PATTERN), State="ENABLED")
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def _drain(sandbox: Sandbox, url: str) -> list[dict[str, Any]]:
    sqs = sandbox.client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        bodies += [json.loads(m["Body"]) for m in messages]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def _update(sandbox: Sandbox, image: str, breaker: bool = False) -> str:
    """Register a revision with ``image``, update the service to it; return the new deployment id."""
    ecs = sandbox.client("ecs")
    current = ecs.describe_task_definition(taskDefinition=SERVICE)["taskDefinition"]
    arn = ecs.register_task_definition(
        family=SERVICE,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{**c, "image": image} for c in current["containerDefinitions"]],
    )["taskDefinition"]["taskDefinitionArn"]
    config: dict[str, Any] = {"maximumPercent": 200, "minimumHealthyPercent": 100}
    if breaker:
        config["deploymentCircuitBreaker"] = {"enable": True, "rollback": False}
    reply = ecs.update_service(
        cluster=CLUSTER, service=SERVICE, taskDefinition=arn, deploymentConfiguration=config
    )
    return str(reply["service"]["deployments"][0]["id"])


def _named(events: list[dict[str, Any]], detail_type: str) -> list[str]:
    return [e["detail"]["eventName"] for e in events if e["detail-type"] == detail_type]


class TestRollingDeploymentEvents:
    def test_a_rolling_deployment_reaches_the_queue_as_ecs_sends_it(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """IN_PROGRESS, task starts and stops, COMPLETED and steady state arrive in AWS's shapes."""
        provision_service(sandbox, CLUSTER, SERVICE, web_image("v1"), desired_count=2, timeout_seconds=30)
        url = _queue_with_rule(sandbox)
        _drain(sandbox, url)  # the first deployment's events
        deployment_id = _update(sandbox, web_image("v2"))
        service = wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=60)

        seen: list[dict[str, Any]] = []

        def all_sent() -> list[dict[str, Any]] | None:
            # the last tick's task events are sent at its end, after COMPLETED may have been read
            seen.extend(_drain(sandbox, url))
            stopped = [e for e in seen if e["detail"].get("lastStatus") == "STOPPED"]
            return seen if len(stopped) >= 2 and _named(seen, "ECS Service Action") else None

        events = wait_until(all_sent, what="the deployment's events", timeout=10)
        assert {e["source"] for e in events} == {"aws.ecs"}
        assert {e["region"] for e in events} == {sandbox.region}
        deployments = [e for e in events if e["detail-type"] == "ECS Deployment State Change"]
        assert [(e["detail"]["eventName"], e["detail"]["deploymentId"]) for e in deployments] == [
            ("SERVICE_DEPLOYMENT_IN_PROGRESS", deployment_id),
            ("SERVICE_DEPLOYMENT_COMPLETED", deployment_id),
        ]
        assert all(e["resources"] == [service["serviceArn"]] for e in deployments)
        assert deployments[0]["detail"]["eventType"] == "INFO"
        assert deployments[1]["detail"]["reason"] == f"ECS deployment {deployment_id} completed."
        assert _named(events, "ECS Service Action") == ["SERVICE_STEADY_STATE"]
        tasks = [e["detail"] for e in events if e["detail-type"] == "ECS Task State Change"]
        assert {t["group"] for t in tasks} == {f"service:{SERVICE}"}
        assert all(t["clusterArn"] == service["clusterArn"] for t in tasks)
        new = [t for t in tasks if t["startedBy"] == deployment_id]
        assert [t["lastStatus"] for t in new].count("RUNNING") == 2
        old = [t for t in tasks if t["startedBy"] != deployment_id and t["lastStatus"] == "STOPPED"]
        assert len(old) == 2
        assert all(t["stoppedReason"].startswith("Scaling activity initiated by") for t in old)

    def test_the_circuit_breaker_sends_deployment_failed(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """A crashing release: SERVICE_DEPLOYMENT_FAILED (ERROR) with the breaker's reason."""
        provision_service(sandbox, CLUSTER, SERVICE, web_image("v1"), desired_count=1, timeout_seconds=30)
        url = _queue_with_rule(sandbox)
        _drain(sandbox, url)
        deployment_id = _update(sandbox, web_image("v3", "crash"), breaker=True)

        seen: list[dict[str, Any]] = []

        def failed() -> list[dict[str, Any]] | None:
            seen.extend(_drain(sandbox, url))
            return (
                seen if "SERVICE_DEPLOYMENT_FAILED" in _named(seen, "ECS Deployment State Change") else None
            )

        events = wait_until(failed, what="SERVICE_DEPLOYMENT_FAILED", timeout=90)
        (ended,) = [e for e in events if e["detail"].get("eventName") == "SERVICE_DEPLOYMENT_FAILED"]
        assert ended["detail"]["eventType"] == "ERROR"
        assert ended["detail"]["deploymentId"] == deployment_id
        assert ended["detail"]["reason"] == "ECS deployment circuit breaker: tasks failed to start."
        stopping = {"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"}
        before = events[: events.index(ended)]
        failing = {
            e["detail"]["taskArn"]
            for e in before
            if e["detail-type"] == "ECS Task State Change" and e["detail"]["lastStatus"] in stopping
        }
        assert len(failing) >= 3  # the breaker's threshold of failed tasks, each told before FAILED


class TestDelivery:
    def test_a_disabled_rule_delivers_nothing(self, sandbox: Sandbox, web_image: Callable[..., str]) -> None:
        """With the rule disabled (moto patch 14), a whole deployment puts nothing in the queue."""
        provision_service(sandbox, CLUSTER, SERVICE, web_image("v1"), desired_count=1, timeout_seconds=30)
        url = _queue_with_rule(sandbox)
        sandbox.client("events").disable_rule(Name="ecs-to-queue")
        _drain(sandbox, url)
        _update(sandbox, web_image("v2"))
        wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=60)
        assert _drain(sandbox, url) == []
        sandbox.client("events").enable_rule(Name="ecs-to-queue")
        _update(sandbox, web_image("v1"))
        wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=60)
        assert "SERVICE_DEPLOYMENT_COMPLETED" in _named(_drain(sandbox, url), "ECS Deployment State Change")
