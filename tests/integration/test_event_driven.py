"""Event-driven verdicts end to end: ECS's events (the sandbox sends them) -> EventBridge rule -> SQS
-> each worker host's consumer -> the deployment's waiting stage woken.

Two stacks, each a private Redis with one real worker: one reads the events queue (made by the
``deploy-agent events setup`` code) with a 30 s safety poll, the other polls as by default (5 s slow
poll). The same deployments run on both, one after the other; the sandbox's rollout log says when
ECS itself decided (COMPLETED, or the circuit breaker's verdict), the result says when the worker
did, and the sandbox counts DescribeServices at its door (from any process). Both stacks run with
the cluster watcher off (DEPLOY_AGENT_WATCH_INTERVAL_SECONDS=0), so only the deployment's own looks
are counted. ECS's timeline is played at a tenth of AWS's pace here (the session's fiftieth would
make a rollout shorter than one slow poll, and no poll interval of the worker is scaled).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from deploy_agent.adapters.aws import AwsClients
from deploy_agent.adapters.ecs_events import EventQueueMaker
from ecs_sandbox.environment import Sandbox, provision_service
from sandbox_harness.stack import StackConfig
from tests.integration.chaos import ChaosStack, chaos_stack, count_calls
from tests.integration.conftest import unique
from tests.sandbox.realism_helpers import playing

pytestmark = pytest.mark.integration

SAFETY_SECONDS = 30.0
#: ECS's pace: a rollout of two tasks takes seconds, not a fraction of the 5 s slow poll
TIME_SCALE = 0.1
#: a verdict this soon after ECS's came from an event: the safety poll is 30 s
QUICK_SECONDS = 3.0
FIGURES: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def ecs_pace(sandbox: Sandbox) -> Iterator[None]:
    with playing(sandbox, sandbox.scheduler.realism.with_scale(TIME_SCALE)):
        yield


@pytest.fixture(scope="module")
def events_queue(sandbox: Sandbox) -> Iterator[tuple[str, str]]:
    """Return (queue URL, rule name) made by ``deploy-agent events setup``'s code; removed after."""
    name = unique("ecs-events")
    made = EventQueueMaker(AwsClients(sandbox.region, endpoint_url=sandbox.aws_endpoint_url)).setup(
        name, name
    )
    yield made.queue_url, name
    events = sandbox.client("events")
    events.remove_targets(Rule=name, Ids=["deploy-agent-queue"])
    events.delete_rule(Name=name)
    sandbox.client("sqs").delete_queue(QueueUrl=made.queue_url)
    print("\n" + "\n".join(FIGURES))


def _base(stack_config: StackConfig) -> StackConfig:
    return replace(stack_config, poll_interval_seconds=5.0)


@pytest.fixture(scope="module")
def evented(
    stack_config: StackConfig, events_queue: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChaosStack]:
    env = {
        "DEPLOY_AGENT_EVENTS_QUEUE_URL": events_queue[0],
        "DEPLOY_AGENT_EVENT_SAFETY_POLL_SECONDS": str(SAFETY_SECONDS),
        "DEPLOY_AGENT_WATCH_INTERVAL_SECONDS": "0",
    }
    with chaos_stack(_base(stack_config), tmp_path_factory.mktemp("evented"), env) as stack:
        stack.flush()
        stack.start_worker("evented", concurrency=2)
        yield stack


@pytest.fixture(scope="module")
def polling(stack_config: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    env = {"DEPLOY_AGENT_WATCH_INTERVAL_SECONDS": "0"}
    with chaos_stack(_base(stack_config), tmp_path_factory.mktemp("polling"), env) as stack:
        stack.flush()
        stack.start_worker("polling", concurrency=2)
        yield stack


def _request(svc: Any, cluster: str, service: str, image: str, health: bool = True) -> dict[str, Any]:
    request: dict[str, Any] = {
        "deployment_id": unique("evt"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        "strategy": {"type": "rolling", "circuit_breaker": True, "circuit_breaker_rollback": True},
        "timeout_seconds": 150,
    }
    if health:
        request["health_check"] = {"url": f"{svc.url}/health", "healthy_threshold": 1, "timeout_seconds": 2}
    return request


def _ecs_verdict_at(sandbox: Sandbox, cluster: str, service: str, since: float) -> float:
    """Return when ECS decided our deployment (the first one created after ``since``): COMPLETED or
    FAILED, or the circuit breaker's rollback deployment created."""
    entries = [
        e
        for e in sandbox.scheduler.rollout_log()
        if e.cluster == cluster and e.service == service and e.at >= since
    ]
    ours = next(e.deployment_id for e in entries if e.state == "IN_PROGRESS")
    for entry in entries:
        if entry.deployment_id == ours and entry.state in ("COMPLETED", "FAILED"):
            return entry.at
        if entry.deployment_id != ours and entry.state == "IN_PROGRESS":
            return entry.at
    raise AssertionError(f"ECS never decided {ours}: {entries}")


def _deploy_stage_ended_at(result: dict[str, Any]) -> float:
    (deploy,) = [s for s in result["stages"] if s["name"] == "deploy"]
    return datetime.fromisoformat(deploy["finished_at"]).timestamp()


def _run(stack: ChaosStack, sandbox: Sandbox, request: dict[str, Any]) -> tuple[dict[str, Any], float, int]:
    """Publish and wait; return (result, seconds from ECS's verdict to the worker's, DescribeServices)."""
    before, since = count_calls(sandbox, "DescribeServices"), time.time()
    result = stack.result(stack.publish(request), timeout=170)
    calls = count_calls(sandbox, "DescribeServices") - before
    ecs_at = _ecs_verdict_at(sandbox, request["cluster_name"], request["service_name"], since)
    return result, _deploy_stage_ended_at(result) - ecs_at, calls


def _provisioned(sandbox: Sandbox, push_app: Any, prefix: str) -> tuple[Any, str, str]:
    cluster, service = "evented", unique(prefix)
    svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=2)
    return svc, cluster, service


class TestEventDrivenVerdicts:
    def test_a_rolling_success_is_seen_at_once_and_with_fewer_describes(
        self, sandbox: Sandbox, evented: ChaosStack, polling: ChaosStack, push_app: Any
    ) -> None:
        """COMPLETED wakes the stage: its verdict follows ECS's within 3 s (the safety poll is 30 s),
        with fewer DescribeServices than the same deployment under polling."""
        svc, cluster, service = _provisioned(sandbox, push_app, "ok")
        result, latency, calls = _run(evented, sandbox, _request(svc, cluster, service, push_app("v2")))
        assert result["outcome"] == "succeeded", (result["error"], result["stages"])
        assert latency < QUICK_SECONDS, latency

        svc, cluster, service = _provisioned(sandbox, push_app, "okp")
        polled, polled_latency, polled_calls = _run(
            polling, sandbox, _request(svc, cluster, service, push_app("v2"))
        )
        assert polled["outcome"] == "succeeded", (polled["error"], polled["stages"])
        FIGURES.append(
            f"rolling success: events {latency:.2f} s after COMPLETED, {calls} DescribeServices; "
            f"polling {polled_latency:.2f} s, {polled_calls} DescribeServices"
        )
        assert calls < polled_calls, (calls, polled_calls)

    def test_a_circuit_breaker_failure_is_seen_at_once_and_with_fewer_describes(
        self, sandbox: Sandbox, evented: ChaosStack, polling: ChaosStack, push_app: Any
    ) -> None:
        """The breaker's verdict (ECS's rollback starts) wakes the stage within 3 s; ECS's rollback is
        followed to its end; fewer DescribeServices than under polling."""
        svc, cluster, service = _provisioned(sandbox, push_app, "cb")
        request = _request(svc, cluster, service, push_app("v3", "crash"), health=False)
        list_tasks = count_calls(sandbox, "ListTasks")
        result, latency, calls = _run(evented, sandbox, request)
        assert result["outcome"] == "rolled_back", result
        assert result["rollback"]["trigger"] == "circuit_breaker"
        assert latency < QUICK_SECONDS, latency
        # The crashed tasks come from ECS's task events (the deployment's book), not ListTasks. A
        # task the breaker's rollback found still starting (ECS relaunches after each crash) is
        # stopped by the scheduler instead: it is listed too, as ECS lists it.
        stopped = result["diagnostics"]["stopped_tasks"]
        crashed = [t for t in stopped if t["stop_code"] == "EssentialContainerExited"]
        assert crashed, result["diagnostics"]
        assert all(3 in t["exit_codes"].values() for t in crashed), stopped
        assert {t["stop_code"] for t in stopped} <= {"EssentialContainerExited", "ServiceSchedulerInitiated"}
        assert count_calls(sandbox, "ListTasks") == list_tasks

        svc, cluster, service = _provisioned(sandbox, push_app, "cbp")
        request = _request(svc, cluster, service, push_app("v3", "crash"), health=False)
        polled, polled_latency, polled_calls = _run(polling, sandbox, request)
        assert polled["outcome"] == "rolled_back", polled
        FIGURES.append(
            f"circuit breaker: events {latency:.2f} s after ECS's verdict, {calls} DescribeServices; "
            f"polling {polled_latency:.2f} s, {polled_calls} DescribeServices"
        )
        assert calls < polled_calls, (calls, polled_calls)


class TestLostEvents:
    def test_with_the_rule_disabled_the_safety_poll_still_ends_the_deployment(
        self, sandbox: Sandbox, evented: ChaosStack, events_queue: tuple[str, str], push_app: Any
    ) -> None:
        """No event arrives (rule disabled): the deployment still succeeds, found by the safety poll."""
        svc, cluster, service = _provisioned(sandbox, push_app, "lost")
        events = sandbox.client("events")
        events.disable_rule(Name=events_queue[1])
        try:
            started = time.monotonic()
            result, latency, calls = _run(evented, sandbox, _request(svc, cluster, service, push_app("v2")))
        finally:
            events.enable_rule(Name=events_queue[1])
        assert result["outcome"] == "succeeded", (result["error"], result["stages"])
        assert latency < SAFETY_SECONDS + 5, latency
        FIGURES.append(
            f"events dropped: verdict {latency:.2f} s after COMPLETED, {calls} DescribeServices, "
            f"{time.monotonic() - started:.1f} s in all"
        )
