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

from ecs_sandbox import Sandbox, provision_service
from ecs_sandbox.faults import FaultRule
from sandbox_harness.stack import StackConfig, WorkerProcess
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
        "health_check": {"url": f"{svc.url}/health", "healthy_threshold": 2},
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
        faults.reseed(9)
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


def _updates(sandbox: Sandbox) -> int:
    return sum(n for (_service, action), n in sandbox.moto.api_calls().items() if action == "UpdateService")


def _service_td(cluster: str, service: str) -> str:
    found = boto3.client("ecs").describe_services(cluster=cluster, services=[service])["services"][0]
    return str(found["taskDefinition"])


class TestEcsRollback:
    def test_ecs_circuit_breaker_rollback_is_awaited_never_fought(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """A crashing release: ECS rolls back, the trigger is circuit_breaker, ours the only UpdateService."""
        cluster, service = "cbreak", unique("cb")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        before = _updates(sandbox)
        result = publish(_release(svc, cluster, service, push_app("v3", "crash")))
        assert result["outcome"] == "rolled_back", (result["error"], result["stages"])
        assert result["rollback"]["trigger"] == "circuit_breaker"
        assert "replaced" not in result["error"]["message"]
        assert _updates(sandbox) - before == 1  # ours; ECS's own rollback is not an UpdateService
        assert _service_td(cluster, service) == svc.task_definition_arn
        assert served_version(svc) == "v1"


class TestDeregisteredRevision:
    def test_automatic_rollback_re_registers_a_deregistered_previous_revision(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """The previous revision was deregistered: the rollback registers a copy and goes back to it."""
        cluster, service = "dereg", unique("drg")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        ecs = boto3.client("ecs")
        ecs.deregister_task_definition(taskDefinition=svc.task_definition_arn)
        request = _release(svc, cluster, service, push_app("v2"))
        request["health_check"] = {
            "url": f"{svc.url}/missing",
            "unhealthy_threshold": 2,
        }
        result = publish(request)
        assert result["outcome"] == "rolled_back", (result["error"], result["stages"])
        restored = _service_td(cluster, service)
        assert restored not in (svc.task_definition_arn, result["task_definition_arn"])
        described = ecs.describe_task_definition(taskDefinition=restored, include=["TAGS"])
        assert described["taskDefinition"]["status"] == "ACTIVE"
        assert {"key": "deploy-agent:restored-from", "value": svc.task_definition_arn} in described["tags"]
        assert served_version(svc) == "v1"

    def test_manual_rollback_to_a_deregistered_release(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Rolling back by hand to a release whose revision ECS deregistered restores a copy of it."""
        from deploy_agent.worker.app import app

        cluster, service = "dereg", unique("drm")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        v2 = publish(_release(svc, cluster, service, push_app("v2")))
        v3 = publish(_release(svc, cluster, service, push_app("v3")))
        assert (v2["outcome"], v3["outcome"]) == ("succeeded", "succeeded")
        boto3.client("ecs").deregister_task_definition(taskDefinition=v2["task_definition_arn"])
        back = app.send_task(
            "deploy_agent.rollback",
            kwargs={"request": {"cluster_name": cluster, "service_name": service, "to": v2["deployment_id"]}},
        ).get(timeout=120)
        assert back["outcome"] == "succeeded", (back["error"], back["stages"])
        restored = _service_td(cluster, service)
        assert restored != v2["task_definition_arn"]
        assert restored.rsplit(":", 1)[0] == v2["task_definition_arn"].rsplit(":", 1)[0]
        assert served_version(svc) == "v2"
