"""End to end: a message on Redis -> a real worker -> real build, push, ECS (sandbox), health, rollback."""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest
import requests

from ecs_sandbox.environment import Sandbox, provision_service
from sandbox_harness.stack import WorkerProcess
from tests.integration.conftest import ECR_HOST, unique

pytestmark = pytest.mark.integration

DIGEST_URI = re.compile(rf"^{re.escape(ECR_HOST)}/web@sha256:[0-9a-f]{{64}}$")


def publish(request: dict[str, Any], timeout: float = 240) -> dict[str, Any]:
    from deploy_agent.worker.app import app

    result: dict[str, Any] = app.send_task("deploy_agent.deploy", kwargs={"request": request}).get(
        timeout=timeout
    )
    return result


def build_request(
    svc: Any, cluster: str, service: str, version: str, mode: str = "ok", **extra: Any
) -> dict[str, Any]:
    return {
        "deployment_id": unique("dep"),
        "cluster_name": cluster,
        "service_name": service,
        "build": {"context": "web", "build_args": {"VERSION": version, "MODE": mode}, "target": "app"},
        "image": {"repository": "web", "tag": f"{version}-{mode}"},
        "health_check": {
            "url": f"{svc.url}/health",
            "healthy_threshold": 2,
            "unhealthy_threshold": 2,
            "timeout_seconds": 2,
        },
        "timeout_seconds": 180,
        **extra,
    }


def served_version(svc: Any) -> str:
    return requests.get(f"{svc.url}/version", timeout=5).text.strip()


def service_td(cluster: str, service: str) -> str:
    ecs = boto3.client("ecs")
    return str(ecs.describe_services(cluster=cluster, services=[service])["services"][0]["taskDefinition"])


class TestRollingSuccess:
    def test_message_to_verified_release(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """A published message is built (multi-stage, build arg), pushed, deployed to 2 tasks and verified."""
        cluster, service = "itest", unique("web")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=2)
        assert served_version(svc) == "v1"

        result = publish(build_request(svc, cluster, service, "v2"))

        assert result["outcome"] == "succeeded", (result["error"], result["rollback"], result["stages"])
        assert DIGEST_URI.match(result["image_uri"]), result["image_uri"]
        assert [s["name"] for s in result["stages"]] == [
            "preflight",
            "build",
            "push",
            "register",
            "deploy",
            "healthcheck",
            "rollback",
            "finalize",
        ]
        assert {s["name"]: s["outcome"] for s in result["stages"]}["rollback"] == "skipped"
        assert result["previous_task_definition_arn"] == svc.task_definition_arn
        assert service_td(cluster, service) == result["task_definition_arn"]
        td = boto3.client("ecs").describe_task_definition(taskDefinition=result["task_definition_arn"])
        assert td["taskDefinition"]["containerDefinitions"][0]["image"] == result["image_uri"]
        # The running tasks serve what was built: the version passed as a build arg.
        assert {served_version(svc) for _ in range(6)} == {"v2"}
        assert result["rollback"] is None
        assert result["error"] is None
        # The previous revision stays registered: it is what a rollback would need.
        previous = boto3.client("ecs").describe_task_definition(taskDefinition=svc.task_definition_arn)
        assert previous["taskDefinition"]["status"] == "ACTIVE"

    def test_prebuilt_image_uri_skips_build_and_push(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any, docker_api: Any
    ) -> None:
        """Given image.uri, the worker neither builds nor pushes: it deploys that image as it is."""
        cluster, service = "itest", unique("pre")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        uri = push_app("v5", repository="prebuilt")
        deployment_id = unique("pre")
        request = {
            "deployment_id": deployment_id,
            "cluster_name": cluster,
            "service_name": service,
            "image": {"uri": uri},
            "health_check": {"url": f"{svc.url}/version", "healthy_threshold": 1},
        }
        result = publish(request)
        assert result["outcome"] == "succeeded", (result["error"], result["rollback"], result["stages"])
        outcomes = {s["name"]: s["outcome"] for s in result["stages"]}
        assert outcomes["build"] == outcomes["push"] == "skipped"
        assert result["image_uri"] == uri
        assert served_version(svc) == "v5"
        repos = boto3.client("ecr").describe_repositories()["repositories"]
        assert "prebuilt" not in {r["repositoryName"] for r in repos}
        assert docker_api.images(filters={"label": f"deploy-agent.deployment-id={deployment_id}"}) == []


class TestRollingRollback:
    def test_crashing_container_is_rolled_back_by_ecs(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """A release whose container exits trips the circuit breaker: rolled_back, never succeeded."""
        cluster, service = "itest", unique("crash")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=2)
        before = boto3.client("ecs").describe_services(cluster=cluster, services=[service])["services"][0]
        provisioning = {e["message"] for e in before["events"] if "(task " in e["message"]}
        assert provisioning, before["events"]  # the first tasks' "has started ..." names them
        result = publish(build_request(svc, cluster, service, "v3", mode="crash"))

        assert result["outcome"] == "rolled_back", result
        assert result["rollback"]["trigger"] == "circuit_breaker"
        events = result["diagnostics"]["service_events"]
        assert any("deployment failed: tasks failed to start" in e for e in events), events
        assert any("rolling back to deployment" in e for e in events), events
        assert not provisioning & set(events), "only the events since the deployment started"
        reasons = {t["stopped_reason"] for t in result["diagnostics"]["stopped_tasks"]}
        assert any("Essential container in task exited" in r for r in reasons), result["diagnostics"]
        stopped = result["diagnostics"]["stopped_tasks"]
        assert any(3 in t["exit_codes"].values() for t in stopped), stopped
        assert service_td(cluster, service) == svc.task_definition_arn
        assert served_version(svc) == "v1"

    def test_circuit_breaker_without_ecs_rollback_is_undone_by_us(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """When ECS only marks the deployment FAILED, the worker puts the previous task definition back."""
        cluster, service = "itest", unique("cbnr")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        request = build_request(
            svc,
            cluster,
            service,
            "v3",
            mode="crash",
            strategy={"type": "rolling", "circuit_breaker_rollback": False},
        )
        result = publish(request)
        assert result["outcome"] == "rolled_back", result
        assert result["rollback"]["trigger"] == "circuit_breaker"
        assert service_td(cluster, service) == svc.task_definition_arn
        assert served_version(svc) == "v1"

    def test_failed_health_check_is_rolled_back(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """ECS completes the rollout but our HTTP health check fails: the previous revision comes back."""
        cluster, service = "itest", unique("unh")
        # The load balancer checks /version (which the unhealthy build still serves), we check /health.
        svc = provision_service(
            sandbox, cluster, service, image=push_app("v1"), desired_count=2, health_path="/version"
        )
        result = publish(build_request(svc, cluster, service, "v4", mode="unhealthy"))
        assert result["outcome"] == "rolled_back", result
        assert result["rollback"]["trigger"] == "health_check"
        assert result["diagnostics"]["stopped_tasks"], "the replaced tasks are named in the result"
        assert "404" in result["error"]["message"] or "status" in result["error"]["message"]
        assert service_td(cluster, service) == svc.task_definition_arn
        assert served_version(svc) == "v1"

    def test_deadline_times_out_and_rolls_back(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """A deployment stuck past its deadline (no circuit breaker) ends timed_out, on the old revision."""
        cluster, service = "itest", unique("late")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        request = {
            "cluster_name": cluster,
            "service_name": service,
            "image": {"uri": push_app("v6", "crash")},
            "strategy": {"type": "rolling", "circuit_breaker": False},
            "timeout_seconds": 30,
        }
        result = publish(request)
        assert result["outcome"] == "timed_out", result
        assert result["rollback"]["trigger"] == "deadline"
        assert service_td(cluster, service) == svc.task_definition_arn
        assert served_version(svc) == "v1"


class TestFailedBuild:
    def test_failed_build_ends_failed_with_the_builders_line(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """A build that fails ends the deployment failed, quoting the builder, with the service untouched."""
        cluster, service = "itest", unique("nobuild")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        request = build_request(svc, cluster, service, "v10")
        request["build"]["build_args"]["FAIL_BUILD"] = "yes"
        calls_before = sandbox.moto.api_calls()
        result = publish(request)
        assert result["outcome"] == "failed", result
        assert result["error"]["type"] == "build_failed"
        assert "returned a non-zero code: 3" in result["error"]["message"]
        outcomes = {s["name"]: s["outcome"] for s in result["stages"]}
        assert outcomes["build"] == "failed"
        assert outcomes["push"] == outcomes["register"] == outcomes["deploy"] == "skipped"
        assert result["rollback"] is None
        # Only looks at the service: the preflight's (is it ours to deploy?) and, while the build
        # runs, the cluster watcher's batched look at in-flight services. Nothing registered or changed.
        calls = sandbox.moto.api_calls()
        changed = {k: calls.get(k, 0) - calls_before.get(k, 0) for k in calls}
        assert {k for k, n in changed.items() if n} == {("ecs", "DescribeServices")}
        assert service_td(cluster, service) == svc.task_definition_arn


class TestRejected:
    @pytest.mark.parametrize(
        ("request_", "field"),
        [
            (
                {"cluster_name": "c", "service_name": "s", "image": {"uri": "r/x:1"}, "desired_count": "two"},
                "desired_count",
            ),
            (
                {"cluster_name": "c", "service_name": "s", "image": {"uri": "r/x:1"}, "colour": "blue"},
                "colour",
            ),
            ({"cluster_name": "c", "image": {"uri": "r/x:1"}}, "service_name"),
            (
                {
                    "cluster_name": "c",
                    "service_name": "s",
                    "image": {"repository": "web"},
                    "build": {"context": "../../etc"},
                },
                "build.context",
            ),
        ],
        ids=["wrong type", "unknown field", "missing service", "build context outside the build root"],
    )
    def test_bad_message_is_rejected_without_touching_aws(
        self, sandbox: Sandbox, worker: WorkerProcess, request_: dict[str, Any], field: str
    ) -> None:
        """An invalid message ends rejected, names the field, and makes no AWS call."""
        before = sandbox.moto.api_calls()
        result = publish(request_, timeout=60)
        assert result["outcome"] == "rejected", result
        assert any(e["field"] == field for e in result["errors"]), result["errors"]
        assert sandbox.moto.api_calls() == before
