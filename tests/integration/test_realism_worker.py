"""The worker's verdicts on ECS as it really behaves, with a real worker on the sandbox.

Issue 9, the worker's points 1 (another controller's service is refused untouched), 3 (a throttling
storm slows good releases down, never fails or rolls them back) and 4 (UpdateService keeps the
service's own deployment settings). They pass on the session's sandbox whatever its profile: none of
them needs the idealised one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy_agent.sandbox import Sandbox, provision_service
from deploy_agent.sandbox.faults import FaultRule
from deploy_agent.sandbox.stack import StackConfig, WorkerProcess
from tests.integration.chaos import chaos_stack
from tests.integration.conftest import unique
from tests.integration.test_rolling import publish, served_version

pytestmark = pytest.mark.integration

#: calls that change something on AWS; a refused deployment makes none of them
MUTATING = (
    "RegisterTaskDefinition",
    "UpdateService",
    "CreateService",
    "DeleteService",
    "DeregisterTaskDefinition",
    "ModifyListener",
    "CreateRepository",
    "PutImage",
    "CreateLogGroup",
)


def _mutations(sandbox: Sandbox) -> int:
    return sum(n for (_service, action), n in sandbox.moto.api_calls().items() if action in MUTATING)


def _release(svc: Any, cluster: str, service: str, image: str, **extra: Any) -> dict[str, Any]:
    return {
        "deployment_id": unique("real"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        "health_check": {"url": f"{svc.url}/health", "interval_seconds": 0.2, "healthy_threshold": 2},
        "timeout_seconds": 300,
        **extra,
    }


def _deployment_configuration(cluster: str, service: str) -> dict[str, Any]:
    found = boto3.client("ecs").describe_services(cluster=cluster, services=[service])["services"][0]
    return dict(found.get("deploymentConfiguration") or {})


class TestOtherControllers:
    @pytest.mark.parametrize("controller", ["CODE_DEPLOY", "EXTERNAL"])
    def test_another_controllers_service_is_rejected_untouched(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any, controller: str
    ) -> None:
        """A CodeDeploy or external-controller service: rejected, the reason names it, 0 mutating calls."""
        cluster, service = "ctrl", unique("ctl")
        svc = provision_service(
            sandbox, cluster, service, image=push_app("v1"), desired_count=1, deployment_controller=controller
        )
        before = _mutations(sandbox)
        result = publish(_release(svc, cluster, service, push_app("v2")))
        assert result["outcome"] == "rejected", (result["error"], result["stages"])
        assert controller in result["error"]["message"]
        assert "ECS deployment controller" in result["error"]["message"]
        assert result["errors"][0]["field"] == "service_name"
        assert _mutations(sandbox) == before
        stages = {s["name"]: s["outcome"] for s in result["stages"]}
        assert stages["preflight"] == "failed"
        assert stages["register"] == stages["deploy"] == "skipped"


class TestTheServicesOwnSettings:
    def test_a_service_tuned_to_150_50_without_rollback_stays_so(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """A message naming no rollout settings leaves the percents and circuit breaker as they were."""
        cluster, service = "tuned", unique("tun")
        tuned = {
            "maximumPercent": 150,
            "minimumHealthyPercent": 50,
            "deploymentCircuitBreaker": {"enable": True, "rollback": False},
        }
        svc = provision_service(
            sandbox, cluster, service, image=push_app("v1"), desired_count=2, deployment_configuration=tuned
        )
        before = _deployment_configuration(cluster, service)
        assert before["maximumPercent"] == 150
        result = publish(_release(svc, cluster, service, push_app("v2")))
        assert result["outcome"] == "succeeded", (result["error"], result["stages"])
        after = _deployment_configuration(cluster, service)
        for key in ("maximumPercent", "minimumHealthyPercent", "deploymentCircuitBreaker"):
            assert after[key] == before[key], key


class TestThrottlingStorm:
    @pytest.mark.timeout(240)
    def test_five_good_releases_in_a_row_all_succeed_with_30_percent_of_ecs_calls_throttled(
        self, sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
    ) -> None:
        """A seeded storm throttles 30% of ECS calls; each of five releases still ends succeeded."""
        cluster, service = "storm", unique("stm")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        images = [push_app("v2"), push_app("v3")]
        env = {
            "AWS_MAX_ATTEMPTS": "2",  # botocore gives up fast: the worker's own back-off must carry it
            "DEPLOY_AGENT_AWS_RETRY_BASE_SECONDS": "0.05",
            "DEPLOY_AGENT_AWS_RETRY_CAP_SECONDS": "0.5",
        }
        faults = sandbox.moto.faults
        faults._rng.seed(9)  # the injector has no public seed once the server runs
        results: list[dict[str, Any]] = []
        started = time.monotonic()
        with chaos_stack(stack_config, tmp_path, env) as stack:
            stack.start_worker("storm", concurrency=2)
            rule = faults.add(FaultRule("ecs", None, "throttle", probability=0.3))
            try:
                for i in range(5):
                    request = _release(svc, cluster, service, images[i % 2])
                    results.append(stack.result(stack.publish(request), timeout=120))
            finally:
                faults.remove(rule)
            injected = sum(
                n for (s, _a, kind), n in faults.injected().items() if s == "ecs" and kind == "throttle"
            )
        elapsed = time.monotonic() - started
        print(f"\n[storm] 5 releases in {elapsed:.1f} s; ECS throttles injected {injected}")
        assert [r["outcome"] for r in results] == ["succeeded"] * 5, [
            (r["outcome"], r["error"]) for r in results
        ]
        assert all(r["rollback"] is None for r in results)
        assert injected > 0
        assert served_version(svc) == "v2"
