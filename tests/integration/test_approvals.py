"""Approvals through real workers: a deployment the policy holds waits without a process, then ends.

Each test runs its own stack (a private Redis, workers of concurrency 1) with a policy file whose
approval rules match the cluster ``approvals``; ``DEPLOY_AGENT_APPROVAL_POLL_SECONDS`` is small.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from deploy_agent.client import approve
from ecs_sandbox import Sandbox, provision_service
from ecs_sandbox.blue_green import provision_blue_green
from sandbox_harness.stack import StackConfig
from tests.integration.chaos import (
    ChaosStack,
    active_temporary_services,
    chaos_stack,
    count_calls,
    kill_group,
    listener_actions,
    service_task_definition,
)
from tests.integration.conftest import unique
from tests.integration.test_rolling import served_version
from tests.integration.test_traffic_strategies import bg_request

pytestmark = pytest.mark.integration

CLUSTER = "approvals"
#: a short visibility timeout for a quick redelivery after a kill (the time limit stays below it)
ENV = {
    "DEPLOY_AGENT_VISIBILITY_TIMEOUT_SECONDS": "10",
    "DEPLOY_AGENT_TASK_TIME_LIMIT_SECONDS": "8",
    "DEPLOY_AGENT_ZERO_DOWNTIME_SETTLE_SECONDS": "0.2",
    "DEPLOY_AGENT_APPROVAL_POLL_SECONDS": "0.3",
}


def policy_env(tmp_path: Path) -> dict[str, str]:
    """The stack's environment with a policy: services quick-* wait 4 s, the rest of the cluster 600 s."""
    policy = {
        "approvals": [
            {"name": "quick", "clusters": [CLUSTER], "services": ["quick-*"], "timeout_seconds": 4},
            {"name": "production", "clusters": [CLUSTER], "timeout_seconds": 600},
        ],
        "outbound": {"allow_loopback": True},
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    return {**ENV, "DEPLOY_AGENT_POLICY": str(path)}


def awaiting(stack: ChaosStack, deployment_id: str) -> dict[str, Any]:
    """Wait until the deployment awaits approval; return its stored state."""
    stack.wait_for_event(deployment_id, lambda e: e["event"] == "awaiting_approval")
    return state_of(stack, deployment_id)


def state_of(stack: ChaosStack, deployment_id: str) -> dict[str, Any]:
    raw = stack.state.get(f"deploy-agent:deployment:{deployment_id}")
    assert raw is not None
    state: dict[str, Any] = json.loads(raw)  # type: ignore[arg-type]
    return state


def cli(stack: ChaosStack, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``deploy-agent ARGS`` against the stack (its environment, its Redis)."""
    env = {**os.environ, **stack.config.env()}
    return subprocess.run(
        [sys.executable, "-m", "deploy_agent.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def green_and_listener(svc: Any, service: str) -> tuple[list[str], list[dict[str, Any]]]:
    return active_temporary_services(CLUSTER, prefix=service), listener_actions(svc.listener_arn)


def test_blue_green_waits_without_a_process_then_approved_succeeds(
    sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
) -> None:
    """Green runs, the listener stays on blue, another deployment completes meanwhile; approve: succeeded."""
    service = unique("appr")
    svc = provision_blue_green(sandbox, CLUSTER, service, image=push_app("v1"), desired_count=1)
    request = bg_request(svc, CLUSTER, service, push_app("v2"))
    request["timeout_seconds"] = 240
    other_service = unique("free")
    other = provision_service(sandbox, "free", other_service, image=push_app("v1"), desired_count=1)
    listener_before = listener_actions(svc.listener_arn)

    with chaos_stack(stack_config, tmp_path, policy_env(tmp_path)) as stack:
        stack.start_worker("a", concurrency=1)
        pending = stack.publish(request)
        state = awaiting(stack, request["deployment_id"])
        assert state["approval"]["rule"] == "production"
        green, listener = green_and_listener(svc, service)
        assert len(green) == 1, green  # green running (and checked: the gate comes after verify_green)
        assert listener == listener_before

        # the only worker process is free: a deployment of another cluster runs to its end meanwhile
        meanwhile = stack.publish(
            {
                "deployment_id": unique("free"),
                "cluster_name": "free",
                "service_name": other_service,
                "image": {"uri": push_app("v2")},
                "timeout_seconds": 120,
            }
        )
        assert stack.result(meanwhile)["outcome"] == "succeeded"
        assert served_version(other) == "v2"
        assert state_of(stack, request["deployment_id"])["approval"]["decision"] is None
        assert listener_actions(svc.listener_arn) == listener_before

        answer = approve(request["deployment_id"], "alice@laptop", "ship it", settings=stack.settings)
        assert answer["decision"] == "approved", answer
        result = stack.result(pending)
        kinds = [e["event"] for e in stack.events(request["deployment_id"])]
        approved = next(e for e in stack.events(request["deployment_id"]) if e["event"] == "approved")

    assert result["outcome"] == "succeeded", result["error"]
    assert result["approval"]["decision"] == "approved"
    assert result["approval"]["approver"] == "alice@laptop"
    assert result["approval"]["reason"] == "ship it"
    assert result["approval"]["decided_at"] == answer["decided_at"]
    assert approved["approver"] == "alice@laptop"
    assert kinds.index("awaiting_approval") < kinds.index("approved") < kinds.index("traffic_shifted")
    assert served_version(svc) == "v2"
    assert service_task_definition(CLUSTER, service) == result["task_definition_arn"]


def test_blue_green_denied_leaves_nothing_behind(
    sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
) -> None:
    service = unique("deny")
    svc = provision_blue_green(sandbox, CLUSTER, service, image=push_app("v1"), desired_count=1)
    request = bg_request(svc, CLUSTER, service, push_app("v2"))
    listener_before = listener_actions(svc.listener_arn)

    with chaos_stack(stack_config, tmp_path, policy_env(tmp_path)) as stack:
        stack.start_worker("a", concurrency=1)
        pending = stack.publish(request)
        awaiting(stack, request["deployment_id"])
        assert len(active_temporary_services(CLUSTER, prefix=service)) == 1
        missing_reason = stack.app.send_task(
            "deploy_agent.deny",
            kwargs={"request": {"deployment_id": request["deployment_id"], "approver": "bob"}},
        ).get(timeout=30)
        assert [e["field"] for e in missing_reason["error"]["errors"]] == ["reason"]
        answer = stack.app.send_task(
            "deploy_agent.deny",
            kwargs={
                "request": {
                    "deployment_id": request["deployment_id"],
                    "approver": "bob",
                    "reason": "code freeze",
                }
            },
        ).get(timeout=30)
        assert answer["decision"] == "denied", answer
        result = stack.result(pending)
        late = approve(request["deployment_id"], "alice", settings=stack.settings)
        lock = stack.lock_holder(CLUSTER, service)
        denied = next(e for e in stack.events(request["deployment_id"]) if e["event"] == "denied")

    assert result["outcome"] == "denied", result["error"]
    assert result["approval"]["decision"] == "denied"
    assert (result["approval"]["approver"], result["approval"]["reason"]) == ("bob", "code freeze")
    assert result["rollback"] is None
    assert (denied["approver"], denied["reason"]) == ("bob", "code freeze")
    assert late["error"]["type"] == "not_awaiting_approval"
    assert lock is None
    assert active_temporary_services(CLUSTER, prefix=service) == []
    assert listener_actions(svc.listener_arn) == listener_before
    assert service_task_definition(CLUSTER, service) == svc.task_definition_arn
    assert served_version(svc) == "v1"


def test_a_worker_killed_while_waiting_leaves_it_waiting(
    sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
) -> None:
    """SIGKILL while awaiting approval; a new worker: still awaiting (status says so); approve: succeeded."""
    service = unique("kill")
    svc = provision_blue_green(sandbox, CLUSTER, service, image=push_app("v1"), desired_count=1)
    request = bg_request(svc, CLUSTER, service, push_app("v2"))
    request["timeout_seconds"] = 240
    deployment_id = request["deployment_id"]
    listener_before = listener_actions(svc.listener_arn)

    with chaos_stack(stack_config, tmp_path, policy_env(tmp_path)) as stack:
        worker_a = stack.start_worker("a", concurrency=1)
        pending = stack.publish(request)
        awaiting(stack, deployment_id)
        time.sleep(1.0)  # a few looks while waiting
        kill_group(worker_a)
        stack.wait_until_redeliverable()
        stack.start_worker("b", concurrency=1)
        looks_before = len(stack.events(deployment_id))
        time.sleep(3.0)
        state = state_of(stack, deployment_id)
        status = cli(stack, "status", deployment_id)
        assert state["approval"]["decision"] is None
        assert state["outcome"] is None
        assert stack.lock_holder(CLUSTER, service) == deployment_id.encode()
        assert listener_actions(svc.listener_arn) == listener_before
        assert len(active_temporary_services(CLUSTER, prefix=service)) == 1
        assert "state: awaiting_approval (rule production" in status.stdout, status
        approved = cli(
            stack, "approve", deployment_id, "--approver", "carol@ops", "--comment", "after restart"
        )
        assert approved.returncode == 0, approved.stderr
        assert json.loads(approved.stdout)["decision"] == "approved"
        result = stack.result(pending)
        kinds = [e["event"] for e in stack.events(deployment_id)]

    assert result["outcome"] == "succeeded", result["error"]
    assert result["approval"]["approver"] == "carol@ops"
    assert kinds.count("awaiting_approval") == 1, kinds
    assert looks_before <= len(kinds)
    assert served_version(svc) == "v2"
    assert active_temporary_services(CLUSTER, prefix=service) == []


def test_rolling_approval_deadline_passes_timed_out_service_untouched(
    sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
) -> None:
    service = unique("quick")
    svc = provision_service(sandbox, CLUSTER, service, image=push_app("v1"), desired_count=1)
    deployment_id = unique("quick")
    request: dict[str, Any] = {
        "deployment_id": deployment_id,
        "cluster_name": CLUSTER,
        "service_name": service,
        "image": {"uri": push_app("v2")},
        "timeout_seconds": 120,
    }
    updates_before = count_calls(sandbox, "UpdateService")

    with chaos_stack(stack_config, tmp_path, policy_env(tmp_path)) as stack:
        stack.start_worker("a", concurrency=1)
        pending = stack.publish(request)
        state = awaiting(stack, deployment_id)
        assert state["approval"]["rule"] == "quick"
        result = stack.result(pending)
        late = cli(stack, "deny", deployment_id, "--reason", "too late")
        lock = stack.lock_holder(CLUSTER, service)

    assert result["outcome"] == "timed_out", result["error"]
    assert result["error"]["type"] == "approval_timed_out"
    assert result["approval"]["decision"] == "timed_out"
    assert result["approval"]["approver"] is None
    waited = datetime.fromisoformat(result["finished_at"]) - datetime.fromisoformat(
        result["approval"]["requested_at"]
    )
    assert 4 <= waited.total_seconds() < 30
    assert late.returncode == 1
    assert json.loads(late.stdout)["error"]["type"] == "not_awaiting_approval"
    assert lock is None
    assert count_calls(sandbox, "UpdateService") == updates_before
    assert service_task_definition(CLUSTER, service) == svc.task_definition_arn
    assert served_version(svc) == "v1"
