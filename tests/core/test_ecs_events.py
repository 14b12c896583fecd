"""Which service an ECS event is about, and whether it wakes the deployment holding it (a table).

The samples are AWS's own, from the ECS developer guide: the deployment events from
docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html, the service
action events from .../ecs_service_events.html, the task event from .../ecs_task_events.html (its
``group`` made a service's, as the service scheduler sets it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from deploy_agent.core.ecs_events import (
    DETAIL_TYPES,
    EcsEvent,
    decide_wake,
    event_pattern,
    parse_event,
    queue_policy,
    queue_region,
)

SERVICE_ARN = "arn:aws:ecs:us-west-2:111122223333:service/default/servicetest"


def _deployment(name: str, event_type: str, reason: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "ddca6449-b258-46c0-8653-e0e3aEXAMPLE",
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "account": "111122223333",
        "time": "2020-05-23T12:31:14Z",
        "region": "us-west-2",
        "resources": [SERVICE_ARN],
        "detail": {
            "eventType": event_type,
            "eventName": name,
            "deploymentId": "ecs-svc/123",
            "updatedAt": "2020-05-23T11:11:11Z",
            "reason": reason,
        },
    }


def _service_action(name: str, event_type: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "af3c496d-f4a8-65d1-70f4-a69d52e9b584",
        "detail-type": "ECS Service Action",
        "source": "aws.ecs",
        "account": "111122223333",
        "time": "2019-11-19T19:27:22Z",
        "region": "us-west-2",
        "resources": [SERVICE_ARN],
        "detail": {
            "eventType": event_type,
            "eventName": name,
            "clusterArn": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
            "createdAt": "2019-11-19T19:27:22.695Z",
        },
    }


def _task(last_status: str, group: str = "service:servicetest") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "9bcdac79-b31f-4d3d-9410-fbd727c29fab",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "111122223333",
        "time": "2016-12-06T16:41:06Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ecs:us-east-1:111122223333:task/b99d40b3-5176-4f71-9a52-9dbd6f1cebef"],
        "detail": {
            "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/default",
            "containers": [{"exitCode": 0, "lastStatus": "STOPPED", "name": "xray"}],
            "createdAt": "2016-12-06T16:41:05.702Z",
            "desiredStatus": "RUNNING",
            "group": group,
            "lastStatus": last_status,
            "startedBy": "ecs-svc/9223370556150183303",
            "taskArn": "arn:aws:ecs:us-east-1:111122223333:task/b99d40b3-5176-4f71-9a52-9dbd6f1cebef",
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/xray:2",
            "version": 4,
        },
    }


def _with(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**event, **changes}


DEPLOYMENT = "ECS Deployment State Change"
ACTION = "ECS Service Action"
TASK = "ECS Task State Change"
#: the deployment every deployment event of these examples is about (as in AWS's examples)
ID = "ecs-svc/123"
#: what the stopped-task book keeps of ``_task("STOPPED")``
STOPPED_KEPT = {
    "containers": [{"exitCode": 0, "name": "xray"}],
    "createdAt": "2016-12-06T16:41:05.702Z",
    "taskArn": "arn:aws:ecs:us-east-1:111122223333:task/b99d40b3-5176-4f71-9a52-9dbd6f1cebef",
}


@pytest.mark.parametrize(
    ("event", "parsed", "wakes"),
    [
        (
            _deployment("SERVICE_DEPLOYMENT_IN_PROGRESS", "INFO", "ECS deployment ecs-svc/123 in progress."),
            EcsEvent(
                DEPLOYMENT,
                "SERVICE_DEPLOYMENT_IN_PROGRESS",
                "us-west-2",
                "default",
                "servicetest",
                "ecs-svc/123",
            ),
            True,
        ),
        (
            _deployment("SERVICE_DEPLOYMENT_COMPLETED", "INFO", "ECS deployment ecs-svc/123 completed."),
            EcsEvent(
                DEPLOYMENT,
                "SERVICE_DEPLOYMENT_COMPLETED",
                "us-west-2",
                "default",
                "servicetest",
                deployment=ID,
            ),
            True,
        ),
        (
            _deployment(
                "SERVICE_DEPLOYMENT_FAILED", "ERROR", "ECS deployment circuit breaker: task failed to start."
            ),
            EcsEvent(
                DEPLOYMENT, "SERVICE_DEPLOYMENT_FAILED", "us-west-2", "default", "servicetest", deployment=ID
            ),
            True,
        ),
        (
            _service_action("SERVICE_STEADY_STATE", "INFO"),
            EcsEvent(ACTION, "SERVICE_STEADY_STATE", "us-west-2", "default", "servicetest"),
            True,
        ),
        (
            _service_action("SERVICE_TASK_START_IMPAIRED", "WARN"),
            EcsEvent(ACTION, "SERVICE_TASK_START_IMPAIRED", "us-west-2", "default", "servicetest"),
            True,
        ),
        (
            _service_action("CAPACITY_PROVIDER_STEADY_STATE", "INFO"),
            EcsEvent(ACTION, "CAPACITY_PROVIDER_STEADY_STATE", "us-west-2", "default", "servicetest"),
            False,
        ),
        (_task("RUNNING"), EcsEvent(TASK, "RUNNING", "us-east-1", "default", "servicetest"), True),
        (
            _task("STOPPED"),
            EcsEvent(
                TASK,
                "STOPPED",
                "us-east-1",
                "default",
                "servicetest",
                stopped_task=json.dumps(STOPPED_KEPT, sort_keys=True),
            ),
            True,
        ),
        (_task("PENDING"), EcsEvent(TASK, "PENDING", "us-east-1", "default", "servicetest"), False),
        (_task("DEACTIVATING"), EcsEvent(TASK, "DEACTIVATING", "us-east-1", "default", "servicetest"), False),
        (_task("STOPPING"), EcsEvent(TASK, "STOPPING", "us-east-1", "default", "servicetest"), False),
        (
            _task("RUNNING", group="task-group"),
            EcsEvent(TASK, "RUNNING", "us-east-1", "default", None),
            False,
        ),
        (
            _with(
                _deployment("SERVICE_DEPLOYMENT_COMPLETED", "INFO", "done"),
                resources=["arn:aws:ecs:us-west-2:111122223333:service/servicetest"],
            ),
            EcsEvent(
                DEPLOYMENT, "SERVICE_DEPLOYMENT_COMPLETED", "us-west-2", None, "servicetest", deployment=ID
            ),
            False,
        ),
        (
            _with(
                _service_action("SERVICE_STEADY_STATE", "INFO"),
                resources=["arn:aws:ecs:us-west-2:111122223333:service/servicetest"],
            ),
            EcsEvent(ACTION, "SERVICE_STEADY_STATE", "us-west-2", "default", "servicetest"),
            True,
        ),
        (
            _with(_deployment("SERVICE_DEPLOYMENT_COMPLETED", "INFO", "done"), region=None),
            EcsEvent(
                DEPLOYMENT,
                "SERVICE_DEPLOYMENT_COMPLETED",
                "us-west-2",
                "default",
                "servicetest",
                deployment=ID,
            ),
            True,
        ),
    ],
    ids=[
        "a deployment in progress names its service by the long ARN",
        "a completed deployment wakes the deployment holding the service",
        "a deployment failed by the circuit breaker wakes it",
        "a steady state wakes it",
        "tasks that cannot start wake it",
        "a capacity provider's steady state changes no verdict",
        "a service's task running wakes it",
        "a service's task stopped wakes it",
        "a task still pending changes no count the worker reads",
        "a task draining out waits for its STOPPED to wake it",
        "a task stopping waits for its STOPPED to wake it",
        "a task run by hand belongs to no service",
        "an old-format service ARN without a cluster cannot be matched",
        "an old-format service ARN takes the cluster from the detail",
        "the region missing from the envelope comes from the ARN",
    ],
)
def test_parse_and_decide(event: dict[str, Any], parsed: EcsEvent, wakes: bool) -> None:
    got = parse_event(json.dumps(event))
    assert got == parsed
    assert decide_wake(got) is wakes


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        json.dumps(_with(_task("RUNNING"), source="aws.ec2")),
        json.dumps(_with(_task("RUNNING"), **{"detail-type": "ECS Container Instance State Change"})),
        json.dumps(_with(_task("RUNNING"), detail="a string")),
        json.dumps(_with(_deployment("SERVICE_DEPLOYMENT_COMPLETED", "INFO", ""), resources=[])),
        json.dumps(_with(_deployment("SERVICE_DEPLOYMENT_COMPLETED", "INFO", ""), resources=[], region=None)),
    ],
    ids=[
        "a body that is not JSON",
        "JSON that is not an object",
        "an event of another service",
        "an ECS event of a kind the rule does not ask for",
        "a detail that is not an object",
        "a service event naming no service",
        "an event with no region anywhere",
    ],
)
def test_what_is_not_an_ecs_event_we_read(body: str) -> None:
    """Anything else parses to None (the consumer deletes it and counts it malformed)."""
    assert parse_event(body) is None


@pytest.mark.parametrize(
    ("event", "about_tasks"),
    [
        (_task("STOPPED"), True),
        (_service_action("SERVICE_TASK_START_IMPAIRED", "WARN"), True),
        (_service_action("SERVICE_STEADY_STATE", "INFO"), False),
        (_deployment("SERVICE_DEPLOYMENT_FAILED", "ERROR", "circuit breaker"), False),
    ],
    ids=["a task's state", "tasks failing to start", "the service's steady state", "a deployment's end"],
)
def test_news_of_tasks_alone_is_told_apart(event: dict[str, Any], about_tasks: bool) -> None:
    """A stage waiting for ECS's verdict sleeps through tasks' news: a task's state, and ECS saying
    it cannot start the service's tasks (a crash loop's), which moves no deployment's state."""
    parsed = parse_event(json.dumps(event))
    assert parsed is not None
    assert parsed.about_tasks is about_tasks


def test_a_stopped_task_keeps_what_the_diagnostics_show_and_nothing_else() -> None:
    """Why and how it stopped, exit codes by container, its times; not its overrides (which may carry
    environment values), attachments or anything else the event holds."""
    event = _task("STOPPED")
    event["detail"] |= {
        "stoppedReason": "Essential container in task exited",
        "stopCode": "EssentialContainerExited",
        "startedAt": "2016-12-06T16:41:06.100Z",
        "stoppedAt": "2016-12-06T16:42:00.000Z",
        "overrides": {"containerOverrides": [{"name": "xray", "environment": [{"name": "K", "value": "v"}]}]},
        "attachments": [{"type": "eni", "details": [{"name": "privateIPv4Address", "value": "10.0.0.1"}]}],
    }
    event["detail"]["containers"][0] |= {"exitCode": 3, "reason": "x", "networkInterfaces": []}
    parsed = parse_event(json.dumps(event))
    assert parsed is not None
    assert json.loads(parsed.stopped_task) == {
        "taskArn": "arn:aws:ecs:us-east-1:111122223333:task/b99d40b3-5176-4f71-9a52-9dbd6f1cebef",
        "stoppedReason": "Essential container in task exited",
        "stopCode": "EssentialContainerExited",
        "createdAt": "2016-12-06T16:41:05.702Z",
        "startedAt": "2016-12-06T16:41:06.100Z",
        "stoppedAt": "2016-12-06T16:42:00.000Z",
        "containers": [{"name": "xray", "exitCode": 3}],
    }
    running = parse_event(json.dumps(_task("RUNNING")))
    assert running is not None
    assert running.stopped_task == ""  # only a stopped task is booked


def test_the_rule_asks_for_the_three_kinds_from_ecs() -> None:
    """The rule's pattern: source aws.ecs and, in its ``$or``, exactly the three detail types the
    consumer reads (what each lets through: tests/sandbox/test_events_rule.py)."""
    pattern = event_pattern()
    assert pattern["source"] == ["aws.ecs"]
    assert [kind for branch in pattern["$or"] for kind in branch["detail-type"]] == [DEPLOYMENT, ACTION, TASK]
    assert set(DETAIL_TYPES) == {DEPLOYMENT, ACTION, TASK}


def test_the_queue_policy_lets_only_this_rule_send() -> None:
    """EventBridge may SendMessage to the queue, on behalf of this rule's ARN only."""
    (statement,) = queue_policy("arn:aws:sqs:us-east-1:1:q", "arn:aws:events:us-east-1:1:rule/r")["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == "arn:aws:sqs:us-east-1:1:q"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": "arn:aws:events:us-east-1:1:rule/r"}}


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/111122223333/q", "eu-west-1"),
        ("http://127.0.0.1:5000/123456789012/q", "us-east-1"),
        ("https://queue.amazonaws.com/111122223333/q", "us-east-1"),
    ],
    ids=["the regional endpoint names it", "a local endpoint takes the default", "the legacy endpoint too"],
)
def test_queue_region(url: str, region: str) -> None:
    assert queue_region(url, "us-east-1") == region
