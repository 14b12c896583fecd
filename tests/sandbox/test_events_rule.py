"""The events rule ``deploy-agent events setup`` makes, matched as EventBridge matches it (moto's
matcher, which implements ``$or`` and ``prefix`` as docs.aws.amazon.com/eventbridge/latest/userguide/
eb-create-pattern-operators.html describes them)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from deploy_agent.core.ecs_events import decide_wake, event_pattern, parse_event
from tests.core.test_ecs_events import _deployment, _service_action, _task, _with

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("event", "sent"),
    [
        (_deployment("SERVICE_DEPLOYMENT_IN_PROGRESS", "INFO", "in progress"), True),
        (_deployment("SERVICE_DEPLOYMENT_FAILED", "ERROR", "circuit breaker"), True),
        (_service_action("SERVICE_STEADY_STATE", "INFO"), True),
        (_service_action("SERVICE_TASK_START_IMPAIRED", "WARN"), True),
        (_service_action("CAPACITY_PROVIDER_STEADY_STATE", "INFO"), False),
        (_task("RUNNING"), True),
        (_task("STOPPED"), True),
        (_task("PROVISIONING"), False),
        (_task("PENDING"), False),
        (_task("DEACTIVATING"), False),
        (_task("STOPPING"), False),
        (_task("STOPPED", group="family:batch"), False),
        (_with(_task("RUNNING"), source="my.app"), False),
    ],
    ids=[
        "a deployment starting",
        "a deployment failing",
        "a service's steady state",
        "tasks that cannot start",
        "a capacity provider's steady state",
        "a service's task running",
        "a service's task stopped",
        "a task provisioning",
        "a task pending",
        "a task deactivating",
        "a task stopping",
        "a task run by hand",
        "another source",
    ],
)
def test_the_rule_sends_only_what_a_wake_may_act_on(event: dict[str, Any], sent: bool) -> None:
    """Every event the consumer would act on reaches the queue; a task's intermediate states, which
    it would only delete, do not (about two of every three task events)."""
    pattern = EventPattern.load(json.dumps(event_pattern()))
    assert pattern.matches_event(event) is sent
    parsed = parse_event(json.dumps(event))
    if sent:
        assert parsed is not None
        assert decide_wake(parsed)
