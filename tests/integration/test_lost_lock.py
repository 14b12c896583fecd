"""A deployment that lost its service lock never acts again (issue 9, the worker's point 9).

As a user saw it: deployment A's worker is SIGKILLed, A's lock expires, deployment B of the same
service (published later) runs to ``succeeded``, then A's stage is redelivered. Before the fence, A
carried on and put its older release back on the service; now it finds the lock was another's and
ends ``superseded`` without one more UpdateService. Real worker processes, the real sandbox.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ecs_sandbox import Sandbox, provision_service
from sandbox_harness.stack import StackConfig
from tests.integration.chaos import chaos_stack, count_calls, kill_group, service_task_definition
from tests.integration.conftest import unique
from tests.integration.test_crash_safety import CRASH_ENV
from tests.integration.test_rolling import served_version

pytestmark = pytest.mark.integration

#: a lock that lapses 3 s after its holder dies (the default is 10 minutes)
LOST_LOCK_ENV = {**CRASH_ENV, "DEPLOY_AGENT_LOCK_TTL_SECONDS": "3"}


def _request(svc: Any, cluster: str, service: str, image: str) -> dict[str, Any]:
    return {
        "deployment_id": unique("lock"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        "health_check": {
            "url": f"{svc.url}/health",
            "healthy_threshold": 2,
            "unhealthy_threshold": 2,
            "timeout_seconds": 2,
        },
        "timeout_seconds": 150,
    }


def test_a_deployment_whose_lock_expired_does_not_undo_the_next_one(
    sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
) -> None:
    """A killed, B runs and succeeds, A redelivered: the service stays on B's release, A superseded."""
    cluster, service = "chaos", unique("lost")
    svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
    request_a = _request(svc, cluster, service, push_app("v2"))
    request_b = _request(svc, cluster, service, push_app("v3"))
    a_id, b_id = request_a["deployment_id"], request_b["deployment_id"]

    with chaos_stack(stack_config, tmp_path, LOST_LOCK_ENV) as stack:
        worker_a = stack.start_worker("a")
        pending_a = stack.publish(request_a)
        # Killed with its revision registered and UpdateService its next call.
        stack.wait_for_event(a_id, lambda e: e["event"] == "task_definition_registered")
        kill_group(worker_a)
        deadline = time.monotonic() + 30
        while stack.lock_holder(cluster, service) is not None:
            assert time.monotonic() < deadline, "A's lock did not expire"
            time.sleep(0.1)

        updates_before_b = count_calls(sandbox, "UpdateService")
        stack.start_worker("b")  # restores A's delivery only once it is past the visibility timeout
        result_b = stack.result(stack.publish(request_b))
        assert result_b["outcome"] == "succeeded", result_b["error"]

        # A's unacked stage is redelivered by a starting worker (a running one sweeps every 100 s).
        stack.wait_until_redeliverable()
        stack.start_worker("c")
        result_a = stack.result(pending_a)
        lock = stack.lock_holder(cluster, service)
        kinds_a = [e["event"] for e in stack.events(a_id)]
        kinds_b = [e["event"] for e in stack.events(b_id)]
        del pending_a  # its __del__ talks to this stack's Redis, which stops with the block

    updates = count_calls(sandbox, "UpdateService") - updates_before_b
    current = service_task_definition(cluster, service)
    print(
        f"\n[lost-lock] A={result_a['outcome']} ({result_a['error']}) B={result_b['outcome']} "
        f"UpdateService after B took the lock: {updates}"
    )
    assert current == result_b["task_definition_arn"], "the service must stay on B's release"
    assert served_version(svc) == "v3"
    # Whose the calls were, should this fail: each deployment's progress events, in order.
    assert updates == 1, (
        f"only B's UpdateService may follow B taking the lock, saw {updates}: A {kinds_a}, B {kinds_b}"
    )
    assert result_a["outcome"] == "superseded", (result_a["outcome"], result_a["error"], kinds_a)
    assert "lost the lock" in result_a["error"]["message"]
    assert "lock_lost" in kinds_a
    assert result_a["deployment_id"] == a_id
    assert result_b["deployment_id"] == b_id
    assert lock is None, f"the service lock is still held by {lock!r}"
