"""Deployments ride out a broker restart, AWS throttles and server errors; a dead registry fails cleanly."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ecs_sandbox import Sandbox, provision_service
from ecs_sandbox.blue_green import provision_blue_green
from ecs_sandbox.faults import FaultRule
from sandbox_harness.stack import StackConfig
from tests.integration.chaos import (
    TERMINAL,
    active_temporary_services,
    chaos_stack,
    closed_port,
    count_calls,
    listener_actions,
    service_task_definition,
)
from tests.integration.conftest import unique
from tests.integration.test_rolling import served_version
from tests.integration.test_traffic_strategies import bg_request
from tests.support import free_port

pytestmark = pytest.mark.integration


def _release(svc: Any, cluster: str, service: str, image: str, healthy_threshold: int = 3) -> dict[str, Any]:
    return {
        "deployment_id": unique("flt"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        "health_check": {
            "url": f"{svc.url}/health",
            "healthy_threshold": healthy_threshold,
            "unhealthy_threshold": 3,
            "timeout_seconds": 2,
        },
        "timeout_seconds": 600,  # recovery from a Redis restart can take the visibility timeout + 100 s
    }


@pytest.fixture
def clear_faults(sandbox: Sandbox) -> Iterator[None]:
    """Drop every fault rule after the test, whatever happened in it."""
    yield
    sandbox.moto.faults.clear()


class TestBrokerLoss:
    # kombu 5.5 sweeps unacked messages every 10 s but scans only every 10th sweep: a stage retry
    # dropped by the restart comes back within the visibility timeout + 100 s.
    @pytest.mark.timeout(900)
    def test_deployments_finish_across_redis_restarts(
        self, sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
    ) -> None:
        """Three deployments outlive a Redis restart in their deploy stage and a Redis crash in a wait."""
        cluster = "broker"
        services = [unique("brk") for _ in range(3)]
        provisioned = {
            s: provision_service(sandbox, cluster, s, image=push_app("v1"), desired_count=1) for s in services
        }
        image = push_app("v2")
        restarts = 0
        # A restart drops the stage retries the worker held; they come back after the visibility
        # timeout (README, "Reliability"), kept short here so the test is quick.
        short = {
            "DEPLOY_AGENT_VISIBILITY_TIMEOUT_SECONDS": "10",
            "DEPLOY_AGENT_TASK_TIME_LIMIT_SECONDS": "8",
            "DEPLOY_AGENT_ZERO_DOWNTIME_SETTLE_SECONDS": "0.2",
        }
        with chaos_stack(stack_config, tmp_path, short, persistent=True) as stack:
            stack.start_worker("w", concurrency=3)
            messages = {s: _release(provisioned[s], cluster, s, image, healthy_threshold=8) for s in services}
            pending = {s: stack.publish(m) for s, m in messages.items()}
            ids = [m["deployment_id"] for m in messages.values()]
            for deployment_id in ids:
                stack.wait_for_event(deployment_id, lambda e: e["event"] == "service_updated")
            stack.redis_server.restart()
            restarts += 1
            # The health checks take 8 x 0.25 s: crash Redis while all three wait between probes.
            for deployment_id in ids:
                stack.wait_for_event(deployment_id, lambda e: e["event"] == "health_probe", timeout=240)
            stack.redis_server.restart(crash=True)
            restarts += 1
            results = {s: stack.result(p, timeout=300) for s, p in pending.items()}

        finished = sum(r["outcome"] in TERMINAL for r in results.values())
        print(f"\n[broker] Redis restarts {restarts}; deployments finished {finished}/{len(results)}")
        assert finished == len(results)
        for service, result in results.items():
            assert result["outcome"] == "succeeded", (service, result["error"])
            assert service_task_definition(cluster, service) == result["task_definition_arn"]
            assert served_version(provisioned[service]) == "v2"


class TestAwsFaults:
    def test_throttles_and_server_errors_lose_no_deployment(
        self,
        sandbox: Sandbox,
        stack_config: StackConfig,
        push_app: Any,
        tmp_path: Path,
        clear_faults: None,
    ) -> None:
        """Throttled describes/ELB calls and 500s on register/update are retried: both strategies succeed."""
        cluster = "faults"
        rolling_service, bg_service = unique("thr"), unique("thrbg")
        svc = provision_service(sandbox, cluster, rolling_service, image=push_app("v1"), desired_count=1)
        setup = provision_blue_green(sandbox, cluster, bg_service, image=push_app("v1"), desired_count=1)
        image = push_app("v2")
        bg_listener_before = listener_actions(setup.listener_arn)
        port = free_port()
        env = {"AWS_MAX_ATTEMPTS": "6", "DEPLOY_AGENT_METRICS_PORT": str(port)}
        with chaos_stack(stack_config, tmp_path, env) as stack:
            stack.start_worker("w", concurrency=2)
            # Added only now: the sandbox's own clients (provisioning, checks) make a single attempt.
            for rule in (
                FaultRule("ecs", "DescribeServices", "throttle", every=3),
                FaultRule("elbv2", None, "throttle", every=3),
                FaultRule("ecs", "RegisterTaskDefinition", "server_error", times=2),
                FaultRule("ecs", "UpdateService", "server_error", times=2),
            ):
                sandbox.moto.faults.add(rule)
            pending = [
                stack.publish(_release(svc, cluster, rolling_service, image)),
                stack.publish(bg_request(setup, cluster, bg_service, image)),
            ]
            results = [stack.result(p) for p in pending]
            injected = sandbox.moto.faults.injected()
            sandbox.moto.faults.clear()
            metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

        throttles = _metric_total(metrics, "deploy_agent_aws_throttles_total")
        lost = sum(r["outcome"] != "succeeded" for r in results)
        print(
            f"\n[aws-faults] faults injected {sum(injected.values())}; deployments lost {lost}/{len(results)}"
        )
        print(
            f"[aws-faults] by call: {dict(sorted((f'{s}:{a}:{k}', n) for (s, a, k), n in injected.items()))}"
        )
        print(f"[aws-faults] deploy_agent_aws_throttles_total = {throttles:g}")
        assert lost == 0, [(r["service_name"], r["outcome"], r["error"]) for r in results]
        by_action = {(a, k): n for (_s, a, k), n in injected.items()}
        assert by_action.get(("DescribeServices", "throttle"), 0) > 0
        assert by_action.get(("RegisterTaskDefinition", "server_error")) == 2
        assert by_action.get(("UpdateService", "server_error")) == 2
        assert any(s == "elasticloadbalancing" for (s, _a, _k) in injected)
        assert throttles > 0
        assert service_task_definition(cluster, rolling_service) == results[0]["task_definition_arn"]
        assert service_task_definition(cluster, bg_service) == results[1]["task_definition_arn"]
        assert served_version(svc) == served_version(setup) == "v2"
        assert listener_actions(setup.listener_arn) == bg_listener_before
        assert active_temporary_services(cluster, prefix=bg_service) == []


def _metric_total(text: str, name: str) -> float:
    """Return the sum of every sample of ``name`` in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


class TestDockerFaults:
    def test_unreachable_registry_fails_the_push_and_leaves_the_service(
        self, sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
    ) -> None:
        """A registry nobody answers on ends the deployment failed (push_failed), the service untouched."""
        cluster, service = "faults", unique("noreg")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        dead = dataclasses.replace(stack_config, registry_host=f"127.0.0.1:{closed_port()}")
        request = _release(svc, cluster, service, "unused")
        request["image"] = {"repository": unique("noreg"), "tag": "v2-ok"}
        request["build"] = {"context": "web", "build_args": {"VERSION": "v2"}}
        updates_before = count_calls(sandbox, "UpdateService")
        started = time.monotonic()
        with chaos_stack(dead, tmp_path) as stack:
            stack.start_worker("w")
            result = stack.result(stack.publish(request))
        print(
            f"\n[docker-faults] outcome={result['outcome']} error={result['error']} "
            f"after {time.monotonic() - started:.1f} s"
        )
        assert result["outcome"] == "failed", result
        assert result["error"]["type"] == "push_failed"
        outcomes = {s["name"]: s["outcome"] for s in result["stages"]}
        assert outcomes["build"] == "succeeded"
        assert outcomes["push"] == "failed"
        assert outcomes["register"] == outcomes["deploy"] == "skipped"
        assert result["rollback"] is None
        assert count_calls(sandbox, "UpdateService") == updates_before
        assert service_task_definition(cluster, service) == svc.task_definition_arn
        assert served_version(svc) == "v1"
