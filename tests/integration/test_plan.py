"""``deploy-agent plan FILE`` as a subprocess against the sandbox: the diff and steps printed, only reads.

The AWS call counter is the sandbox's moto server (it counts every call by (service, action),
the subprocess's included). The plan runs in the CLI's own process: no worker, no broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from ecs_sandbox import Sandbox, provision_service
from ecs_sandbox.blue_green import provision_blue_green
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.conftest import ECR_HOST, unique
from tests.integration.test_traffic_strategies import bg_request

pytestmark = pytest.mark.integration

READS = ("Describe", "List", "Get")


def plan_cli(
    config: StackConfig,
    tmp_path: Path,
    message: dict[str, Any],
    *args: str,
    policy: dict[str, Any] | None = None,
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{message.get('deployment_id', 'message')}.json"
    path.write_text(json.dumps(message))
    env = {**os.environ, **config.env()}
    env.pop("DEPLOY_AGENT_POLICY", None)
    if policy is not None:
        policy_file = tmp_path / "policy.json"
        policy_file.write_text(json.dumps(policy))
        env["DEPLOY_AGENT_POLICY"] = str(policy_file)
    return subprocess.run(
        [sys.executable, "-m", "deploy_agent.cli", "plan", str(path), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def calls_during(sandbox: Sandbox, run: Any) -> tuple[Any, dict[tuple[str, str], int]]:
    before = sandbox.moto.api_calls()
    result = run()
    after = sandbox.moto.api_calls()
    return result, {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def test_rolling_plan_prints_diff_and_steps_and_only_reads(
    sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
) -> None:
    cluster, service = "plan", unique("roll")
    v1 = push_app("v1")
    svc = provision_service(
        sandbox, cluster, service, image=v1, desired_count=1, environment={"MODE": "planted-secret-1"}
    )
    v2 = f"{ECR_HOST}/web:v2-ok"
    message = {
        "deployment_id": unique("plan"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": v2},
        "strategy": {"type": "rolling", "maximum_percent": 200, "minimum_healthy_percent": 100},
        "health_check": {"url": f"{svc.url}/health"},
    }
    done, calls = calls_during(sandbox, lambda: plan_cli(stack_config, tmp_path, message))
    out = done.stdout
    assert done.returncode == 0, (out, done.stderr)
    assert f"containerDefinitions[app].image: {v1} -> {v2}" in out
    assert "would deploy: yes" in out
    assert f"UpdateService {cluster}/{service} to the new revision" in out
    assert "maximumPercent 200, minimumHealthyPercent 100" in out
    assert "push: skipped: image.uri is deployed as given" in out
    assert f"healthcheck: probe {svc.url}/health" in out
    assert "planted-secret-1" not in out + done.stderr
    assert calls, "the plan read the service"
    assert [k for k in calls if not k[1].startswith(READS)] == [], calls
    ecs = boto3.client("ecs")
    assert ecs.describe_services(cluster=cluster, services=[service])["services"][0]["taskDefinition"] == (
        svc.task_definition_arn
    )

    # --json: the same plan as a dict
    done = plan_cli(stack_config, tmp_path, message, "--json")
    plan = json.loads(done.stdout)
    assert plan["would_deploy"] is True
    assert done.returncode == 0
    assert plan["task_definition"]["current"] == svc.task_definition_arn
    assert [s["step"] for s in plan["steps"] if s["stage"] == "deploy"] == [
        "await_approval",
        "update_service",
        "wait_rollout",
    ]


def test_blue_green_plan_lists_each_step(
    sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
) -> None:
    cluster, service = "plan", unique("bg")
    setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
    message = bg_request(setup, cluster, service, f"{ECR_HOST}/web:v2-ok", bake_seconds=5)
    done, calls = calls_during(sandbox, lambda: plan_cli(stack_config, tmp_path, message))
    out = done.stdout
    assert done.returncode == 0, (out, done.stderr)
    assert "preflight: ok" in out
    assert f"web:v1-ok -> {ECR_HOST}/web:v2-ok" in out
    green = f"{service}-green-{message['deployment_id']}"
    for line in (
        f"deploy/create_green: create green service {green} on the new revision with 1 task in target "
        f"group {setup.green_target_group_arn}",
        f"deploy/shift_to_green: move listener {setup.listener_arn} to green",
        "deploy/bake: bake 5 s while the gates pass",
        f"deploy/update_blue: update {service} to the new revision",
        f"deploy/shift_to_blue: move listener {setup.listener_arn} back to {service}",
        f"deploy/delete_green: delete {green}",
    ):
        assert line in out, out
    order = [
        out.index(s) for s in ("create_green", "wait_green", "verify_green", "shift_to_green", "delete_green")
    ]
    assert order == sorted(order)
    assert [k for k in calls if not k[1].startswith(READS)] == [], calls
    assert ("elasticloadbalancing", "DescribeListeners") in calls  # the traffic preflight ran
    arns = boto3.client("ecs").list_services(cluster=cluster)["serviceArns"]
    assert setup.service_arn in arns
    assert [a for a in arns if "-green-" in a] == []  # nothing was created


def test_plan_outside_the_policy_names_the_rule_and_exits_1(
    sandbox: Sandbox, stack_config: StackConfig, tmp_path: Path
) -> None:
    message = {
        "deployment_id": unique("plan"),
        "cluster_name": "staging",
        "service_name": "web",
        "image": {"uri": f"{ECR_HOST}/web:v2-ok"},
    }
    policy = {"clusters": ["prod-*"], "registries": ["*.dkr.ecr.*.amazonaws.com"]}
    done, calls = calls_during(sandbox, lambda: plan_cli(stack_config, tmp_path, message, policy=policy))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "policy: NOT allowed" in done.stdout
    assert "cluster_name: 'staging' is not one of the allowed clusters (rule clusters)" in done.stdout
    assert "would deploy: no" in done.stdout
    assert calls == {}

    done = plan_cli(stack_config, tmp_path, message, "--json", policy=policy)
    plan = json.loads(done.stdout)
    assert plan["policy"]["violations"] == [
        {
            "field": "cluster_name",
            "rule": "clusters",
            "problem": "'staging' is not one of the allowed clusters",
        }
    ]
    assert done.returncode == 1


def test_plan_via_worker_is_the_same_plan(
    sandbox: Sandbox, stack_config: StackConfig, worker: WorkerProcess, push_app: Any, tmp_path: Path
) -> None:
    """``--via-worker`` sends the ``deploy_agent.plan`` task to a real worker; it reads only, too."""
    cluster, service = "plan", unique("via")
    v1 = push_app("v1")
    svc = provision_service(sandbox, cluster, service, image=v1, desired_count=1)
    message = {
        "deployment_id": unique("plan"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": f"{ECR_HOST}/web:v2-ok"},
    }
    local = json.loads(plan_cli(stack_config, tmp_path, message, "--json").stdout)
    done, calls = calls_during(
        sandbox, lambda: plan_cli(stack_config, tmp_path, message, "--json", "--via-worker")
    )
    assert done.returncode == 0, done.stderr
    remote = json.loads(done.stdout)
    assert remote == local
    assert remote["task_definition"]["current"] == svc.task_definition_arn
    assert calls
    assert [k for k in calls if not k[1].startswith(READS)] == [], calls
