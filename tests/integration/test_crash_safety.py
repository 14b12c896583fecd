"""A worker SIGKILLed at any stage: a fresh worker on the same Redis brings the deployment to a clean end.

Each case runs a dedicated worker A (concurrency 1) on a private Redis, waits for a progress event
that marks the stage, SIGKILLs A's whole process group, then starts worker B once the unacked
delivery has aged past the visibility timeout (a starting worker restores such deliveries at once;
a running one sweeps only every ``unacked_restore_interval * unacked_restore_throttle`` seconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ecs_sandbox import Sandbox, provision_service
from ecs_sandbox.blue_green import provision_blue_green
from sandbox_harness.stack import StackConfig
from tests.integration.chaos import (
    TERMINAL,
    active_temporary_services,
    chaos_stack,
    count_calls,
    http_status,
    kill_group,
    listener_actions,
    service_task_definition,
)
from tests.integration.conftest import unique
from tests.integration.test_rolling import served_version
from tests.integration.test_traffic_strategies import bg_request

pytestmark = pytest.mark.integration

#: short enough for a quick redelivery; the time limit must stay below the visibility timeout
CRASH_ENV = {
    "DEPLOY_AGENT_VISIBILITY_TIMEOUT_SECONDS": "10",
    "DEPLOY_AGENT_TASK_TIME_LIMIT_SECONDS": "8",
    # The soft time limit these settings give is 1 s (see test_short_time_limit_...): keep the
    # zero-downtime settle, which sleeps inside a stage, well below it.
    "DEPLOY_AGENT_ZERO_DOWNTIME_SETTLE_SECONDS": "0.2",
}


@dataclass(frozen=True)
class KillPoint:
    """Where worker A dies: right after the first progress event that ``matches``."""

    name: str
    strategy: str
    event: str
    step: str | None = None
    build: bool = False
    release: str = "ok"
    bake_seconds: float = 0
    delay: float = 0.0
    expected: str = "succeeded"

    def matches(self, event: dict[str, Any]) -> bool:
        return event["event"] == self.event and (self.step is None or event.get("step") == self.step)


KILL_POINTS = [
    KillPoint("killed while building", "rolling", "build_step", build=True),
    KillPoint("killed while pushing", "rolling", "repository_created", build=True),
    KillPoint("killed after registering the task definition", "rolling", "task_definition_registered"),
    KillPoint("killed right after UpdateService", "rolling", "service_updated"),
    KillPoint("killed while following the rollout", "rolling", "rollout_progress"),
    KillPoint("killed right after the traffic shift", "blue_green", "traffic_shifted"),
    KillPoint(
        "killed during the bake",
        "blue_green",
        "step_finished",
        step="shift_to_green",
        bake_seconds=3,
        delay=0.5,
    ),
    KillPoint(
        "killed while rolling back",
        "rolling",
        "rollback_started",
        release="unhealthy",
        expected="rolled_back",
    ),
]

_TALLY: dict[str, Any] = {"tried": 0, "survived": 0, "cases": {}}


@pytest.fixture(scope="module")
def sigkill_tally(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Count SIGKILLs tried and survived; print the figure (and keep it as JSON) after the matrix."""
    yield _TALLY
    print(f"\n[sigkill] survived {_TALLY['survived']}/{_TALLY['tried']}")
    path = tmp_path_factory.mktemp("figures") / "sigkill.json"
    path.write_text(json.dumps(_TALLY, indent=2))


def _rolling_request(svc: Any, cluster: str, service: str, point: KillPoint, push_app: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "deployment_id": unique("kill"),
        "cluster_name": cluster,
        "service_name": service,
        "health_check": {
            "url": f"{svc.url}/health",
            "healthy_threshold": 2,
            "unhealthy_threshold": 2,
            "timeout_seconds": 2,
        },
        "timeout_seconds": 150,
    }
    if point.build:
        # A repository of its own: its creation is the push stage's first event.
        request["build"] = {"context": "web", "build_args": {"VERSION": "v2", "MODE": point.release}}
        request["image"] = {"repository": unique("crash"), "tag": f"v2-{point.release}"}
    else:
        request["image"] = {"uri": push_app("v2", point.release)}
    return request


@pytest.mark.parametrize("point", KILL_POINTS, ids=[p.name for p in KILL_POINTS])
def test_sigkill_at_a_stage_is_survived(
    point: KillPoint,
    sandbox: Sandbox,
    stack_config: StackConfig,
    push_app: Any,
    tmp_path: Path,
    sigkill_tally: dict[str, Any],
) -> None:
    """A worker SIGKILLed at this stage: a new worker ends the deployment cleanly, nothing left behind."""
    sigkill_tally["tried"] += 1
    cluster, service = "chaos", unique("kill")
    if point.strategy == "blue_green":
        svc: Any = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        request = bg_request(svc, cluster, service, push_app("v2"), bake_seconds=point.bake_seconds)
        request["timeout_seconds"] = 150
    else:
        # The balancer checks /version, which an "unhealthy" release still serves; we check /health.
        svc = provision_service(
            sandbox, cluster, service, image=push_app("v1"), desired_count=1, health_path="/version"
        )
        request = _rolling_request(svc, cluster, service, point, push_app)
    deployment_id = request["deployment_id"]
    listener_before = listener_actions(svc.listener_arn)
    updates_before = count_calls(sandbox, "UpdateService")

    with chaos_stack(stack_config, tmp_path, CRASH_ENV) as stack:
        worker_a = stack.start_worker("a")
        pending = stack.publish(request)
        stack.wait_for_event(deployment_id, point.matches)
        time.sleep(point.delay)
        kill_group(worker_a)
        killed_at = time.monotonic()
        stack.wait_until_redeliverable()
        stack.start_worker("b")
        result = stack.result(pending)
        recovered = time.monotonic() - killed_at
        lock = stack.lock_holder(cluster, service)
        kinds = [e["event"] for e in stack.events(deployment_id)]

    updates = count_calls(sandbox, "UpdateService") - updates_before
    print(
        f"\n[sigkill] {point.name}: outcome={result['outcome']} "
        f"error={result['error']} finished {recovered:.1f} s after the kill, UpdateService x{updates}"
    )
    sigkill_tally["cases"][point.name] = {
        "outcome": result["outcome"],
        "seconds_after_kill": round(recovered, 1),
        "update_service_calls": updates,
    }
    assert result["outcome"] in TERMINAL, result
    assert result["outcome"] == point.expected, (result["outcome"], result["error"], kinds)
    assert lock is None, f"the service lock is still held by {lock!r}"
    assert active_temporary_services(cluster, prefix=service) == []
    assert listener_actions(svc.listener_arn) == listener_before
    current = service_task_definition(cluster, service)
    assert current in (result["previous_task_definition_arn"], result["task_definition_arn"])
    assert http_status(f"{svc.url}/version") == 200
    if result["outcome"] == "succeeded":
        assert current == result["task_definition_arn"]
        assert served_version(svc) == "v2"
        assert updates == 1, f"UpdateService sent {updates} times"
    else:
        assert current == svc.task_definition_arn
        assert served_version(svc) == "v1"
        assert updates == 2, f"UpdateService sent {updates} times (forward + revert expected)"
    sigkill_tally["survived"] += 1


def test_short_task_time_limit_still_deploys_blue_green(
    sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
) -> None:
    """With an 8 s task time limit (default settle) a blue-green deployment still succeeds."""
    cluster, service = "chaos", unique("soft")
    setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
    env = {k: v for k, v in CRASH_ENV.items() if "SETTLE" not in k}
    with chaos_stack(stack_config, tmp_path, env) as stack:
        stack.start_worker("a")
        result = stack.result(stack.publish(bg_request(setup, cluster, service, push_app("v2"))))
    left = active_temporary_services(cluster, prefix=service)
    print(f"\n[soft-limit] outcome={result['outcome']} error={result['error']} green left={left}")
    assert result["outcome"] == "succeeded", result["error"]
    assert left == []


@pytest.mark.parametrize("point", ["before production traffic", "step 1 (50%)"])
def test_sigkill_while_ecs_waits_at_a_native_hook_is_resumed_answering_each_hook_once(
    point: str, sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
) -> None:
    """A worker killed at one of ECS's PAUSE hooks: another answers it; no hook is continued twice."""
    from ecs_sandbox.native_setup import provision_native
    from tests.integration.test_native_strategies import native_request

    cluster, service = "chaos", unique("nat")
    setup = provision_native(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
    request = native_request(
        setup,
        cluster,
        service,
        push_app("v2"),
        type="ecs_linear",
        step_percent=50.0,
        step_bake_time_in_minutes=1,
    )
    request["timeout_seconds"] = 150
    continues_before = count_calls(sandbox, "ContinueServiceDeployment")
    with chaos_stack(stack_config, tmp_path, CRASH_ENV) as stack:
        worker_a = stack.start_worker("a")
        pending = stack.publish(request)
        stack.wait_for_event(
            request["deployment_id"], lambda e: e["event"] == "hook_reached" and e.get("point") == point
        )
        kill_group(worker_a)
        killed_at = time.monotonic()
        stack.wait_until_redeliverable()
        stack.start_worker("b")
        result = stack.result(pending)
        recovered = time.monotonic() - killed_at
    continues = count_calls(sandbox, "ContinueServiceDeployment") - continues_before
    print(f"\n[sigkill] native hook {point!r}: {result['outcome']} {recovered:.1f} s after the kill")
    assert result["outcome"] == "succeeded", (result["error"], result["service_deployment"])
    hooks = result["service_deployment"]["hooks"]
    assert [h["point"] for h in hooks] == [
        "test traffic",
        "before production traffic",
        "step 1 (50%)",
        "step 2 (100%)",
    ]
    assert continues == 4, f"ContinueServiceDeployment sent {continues} times for 4 hook firings"
    assert served_version(setup) == "v2"
