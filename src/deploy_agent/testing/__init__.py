"""Test doubles that ship with the package: scripted AWS ports for strategy tests without AWS.

``FakeEcs`` implements the strategies' ``EcsPort``: it records every UpdateService and lets a test
script what DescribeServices answers next, so a strategy's recipe can be tested step by step. It
also keeps the temporary (green/canary) services it is asked to create, each with deployments of
its own that the test completes or fails.

The traffic strategies' other ports: ``FakeElb`` (listeners, target groups, target health),
``FakeAlarms`` (CloudWatch alarm states), ``FakeProber`` (scripted HTTP probes),
``FakeTrafficWatch`` (the zero-downtime watch), ``FakeRevisions`` and ``FakePrometheus``
(scripted analysis queries; ``VerdictLog`` counts gate verdicts); ``FakeAws.ports`` is where
mypy checks each of them against its ``core.ports`` Protocol. ``FakeEcs`` and ``FakeElb`` append every
AWS-visible change to a ``journal`` of :class:`AwsCall`; give both the same list to see one order.
"""

from deploy_agent.testing.aws import (
    BLUE_TG_ARN,
    GREEN_TG_ARN,
    IMAGE_URI,
    LISTENER_ARN,
    NEW_TASK_DEFINITION,
    OLD_TASK_DEFINITION,
    Crash,
    FakeAws,
    traffic_aws,
    traffic_state,
)
from deploy_agent.testing.clock import FakeClock
from deploy_agent.testing.ecs import AwsCall, FakeEcs, TempService, UpdateCall, deployment
from deploy_agent.testing.elb import FakeElb, ListenerChange, forward_action
from deploy_agent.testing.probes import (
    FakeAlarms,
    FakeProber,
    FakeRevisions,
    FakeTrafficWatch,
    WatchedChange,
    probe_failed,
    probe_ok,
)
from deploy_agent.testing.prometheus import FakePrometheus, VerdictLog, sample

__all__ = [
    "BLUE_TG_ARN",
    "GREEN_TG_ARN",
    "IMAGE_URI",
    "LISTENER_ARN",
    "NEW_TASK_DEFINITION",
    "OLD_TASK_DEFINITION",
    "AwsCall",
    "Crash",
    "FakeAlarms",
    "FakeAws",
    "FakeClock",
    "FakeEcs",
    "FakeElb",
    "FakeProber",
    "FakePrometheus",
    "FakeRevisions",
    "FakeTrafficWatch",
    "ListenerChange",
    "TempService",
    "UpdateCall",
    "VerdictLog",
    "WatchedChange",
    "deployment",
    "forward_action",
    "probe_failed",
    "probe_ok",
    "sample",
    "traffic_aws",
    "traffic_state",
]
