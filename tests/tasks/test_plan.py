"""``plan_request`` against the sandbox's AWS (moto): verdicts, diff, preflight, and only reads.

The service is made with boto3 (desired count 0: nothing runs); ECS's eventual consistency is
switched off for these tests (``playing(IDEALISED)``): a plan is one look, not a rollout.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from deploy_agent.adapters.read_only import MutationRefused, ReadOnly
from deploy_agent.settings import Settings
from deploy_agent.tasks.plan import plan_request
from deploy_agent.tasks.runtime import Runtime
from ecs_sandbox import Sandbox
from ecs_sandbox.realism import IDEALISED
from tests.sandbox.realism_helpers import playing

pytestmark = pytest.mark.integration

READS = ("Describe", "List", "Get")
SECRET = "planted-secret-value-4711"


@pytest.fixture
def sandbox(session_sandbox: Sandbox) -> Iterator[Sandbox]:
    with playing(session_sandbox, IDEALISED):
        yield session_sandbox


def runtime(tmp_path: Path, policy: dict[str, Any] | None = None) -> Runtime:
    path = None
    if policy is not None:
        path = tmp_path / "policy.json"
        path.write_text(json.dumps(policy))
    # Redis is never used by a plan: a port nothing listens on proves it
    return Runtime(
        settings=Settings(policy=path, build_root=tmp_path),
        redis=redis.Redis(port=1, socket_connect_timeout=0.2),
    )


def service(sandbox: Sandbox, controller: str = "ECS") -> tuple[str, str, str]:
    ecs = sandbox.client("ecs")
    cluster, name = f"plan-{uuid.uuid4().hex[:6]}", f"svc-{uuid.uuid4().hex[:6]}"
    ecs.create_cluster(clusterName=cluster)
    arn = ecs.register_task_definition(
        family=name,
        networkMode="bridge",
        containerDefinitions=[
            {
                "name": "app",
                "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v1",
                "memory": 256,
                "environment": [{"name": "MODE", "value": SECRET}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": f"/g/{name}"}},
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    sandbox.client("logs").create_log_group(logGroupName=f"/g/{name}")
    ecs.create_service(
        cluster=cluster,
        serviceName=name,
        taskDefinition=arn,
        desiredCount=0,
        deploymentController={"type": controller},
    )
    return cluster, name, arn


def message(cluster: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "deployment_id": f"plan-{uuid.uuid4().hex[:8]}",
        "cluster_name": cluster,
        "service_name": name,
        "image": {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2"},
        **extra,
    }


def new_calls(sandbox: Sandbox, before: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    after = sandbox.moto.api_calls()
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def test_rolling_plan_reads_only_and_shows_the_diff(sandbox: Sandbox, tmp_path: Path) -> None:
    cluster, name, arn = service(sandbox)
    before = sandbox.moto.api_calls()
    plan = plan_request(
        message(cluster, name, strategy={"type": "rolling", "maximum_percent": 150}), runtime(tmp_path)
    )
    calls = new_calls(sandbox, before)
    assert plan["valid"], plan
    assert plan["would_deploy"], plan
    assert plan["policy"] == {"set": False, "allowed": True, "violations": []}
    assert plan["preflight"] == {"ran": True, "ok": True, "problems": []}
    td = plan["task_definition"]
    assert td["current"] == arn
    assert td["family"] == name
    assert td["diff"] == [
        "containerDefinitions[app].image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v1 -> "
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2"
    ]
    assert td["log_groups"] == [{"group": f"/g/{name}", "region": "us-east-1", "action": "exists"}]
    update = next(s for s in plan["steps"] if s["step"] == "update_service")
    assert "maximumPercent 150" in update["text"]
    assert plan["approval"] is None
    assert calls, "the plan read the service"
    assert all(action.startswith(READS) for _, action in calls), calls
    assert ("ecs", "DescribeTaskDefinition") in calls
    assert SECRET not in json.dumps(plan)


def test_changed_definition_diff_hides_values(sandbox: Sandbox, tmp_path: Path) -> None:
    cluster, name, _ = service(sandbox)
    td = {
        "family": name,
        "network_mode": "bridge",
        "requires_compatibilities": ["EC2"],
        "cpu": "512",
        "container_definitions": [
            {
                "name": "app",
                "image": "placeholder",
                "memory": 256,
                "environment": {"MODE": "other", "EXTRA": SECRET},
                "log_configuration": {"log_driver": "awslogs", "options": {"awslogs-group": f"/g/{name}"}},
            }
        ],
    }
    plan = plan_request(message(cluster, name, task_definition=td), runtime(tmp_path))
    assert plan["valid"], plan["errors"]
    diff = plan["task_definition"]["diff"]
    assert "cpu: added 512" in diff
    assert "containerDefinitions[app].environment[MODE]: (value changed)" in diff
    assert "containerDefinitions[app].environment[EXTRA] added" in diff
    assert SECRET not in json.dumps(plan)


def test_invalid_message_touches_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    before = sandbox.moto.api_calls()
    plan = plan_request({"cluster_name": "c", "service_name": "bad name!", "image": {}}, runtime(tmp_path))
    assert plan["valid"] is False
    assert plan["would_deploy"] is False
    assert {e["field"] for e in plan["errors"]} >= {"service_name"}
    assert plan["steps"] == []
    assert new_calls(sandbox, before) == {}


def test_outside_the_policy_names_the_rule_and_reads_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    before = sandbox.moto.api_calls()
    rt = runtime(tmp_path, {"clusters": ["prod-*"], "approvals": [{"name": "production", "clusters": ["*"]}]})
    plan = plan_request(message("staging", "web"), rt)
    assert plan["valid"] is True
    assert plan["policy"]["allowed"] is False
    assert [(v["field"], v["rule"]) for v in plan["policy"]["violations"]] == [("cluster_name", "clusters")]
    assert plan["preflight"]["ran"] is False
    assert plan["would_deploy"] is False
    assert new_calls(sandbox, before) == {}


def test_approval_rule_is_reported(sandbox: Sandbox, tmp_path: Path) -> None:
    cluster, name, _ = service(sandbox)
    rt = runtime(
        tmp_path, {"approvals": [{"name": "production", "services": [name], "timeout_seconds": 600}]}
    )
    plan = plan_request(message(cluster, name), rt)
    assert plan["approval"] == {"rule": "production", "timeout_seconds": 600}
    gate = next(s for s in plan["steps"] if s["step"] == "await_approval")
    assert gate["skipped"] is False
    assert "rule production" in gate["text"]
    assert plan["would_deploy"] is True


@pytest.mark.parametrize(
    ("controller", "problem"), [("CODE_DEPLOY", "CodeDeploy"), ("EXTERNAL", "external controller")]
)
def test_foreign_controller_fails_preflight(
    sandbox: Sandbox, tmp_path: Path, controller: str, problem: str
) -> None:
    cluster, name, _ = service(sandbox, controller)
    plan = plan_request(message(cluster, name), runtime(tmp_path))
    assert plan["preflight"]["ok"] is False
    assert problem in plan["preflight"]["problems"][0]["problem"]
    assert plan["would_deploy"] is False


def test_missing_service_fails_preflight(sandbox: Sandbox, tmp_path: Path) -> None:
    plan = plan_request(message("nowhere", "nothing"), runtime(tmp_path))
    assert plan["preflight"]["ok"] is False
    assert plan["preflight"]["problems"][0]["field"] == "service_name"
    assert "not found" in plan["preflight"]["problems"][0]["problem"]
    assert plan["task_definition"] is None
    assert plan["would_deploy"] is False


def test_missing_log_group_fails_preflight(sandbox: Sandbox, tmp_path: Path) -> None:
    cluster, name, _ = service(sandbox)
    sandbox.client("logs").delete_log_group(logGroupName=f"/g/{name}")
    plan = plan_request(message(cluster, name), runtime(tmp_path))
    assert plan["task_definition"]["log_groups"][0]["action"] == "missing"
    assert "log group" in plan["preflight"]["problems"][0]["problem"]
    assert plan["would_deploy"] is False


def test_read_only_refuses_mutations() -> None:
    class Adapter:
        def describe_service(self) -> str:
            return "read"

        def update_service(self) -> str:
            raise AssertionError("must not be reached")

    wrapped: Any = ReadOnly(Adapter(), "ecs")
    assert wrapped.describe_service() == "read"
    with pytest.raises(MutationRefused, match=r"ecs\.update_service refused"):
        wrapped.update_service()


def test_celery_task_is_registered() -> None:
    from deploy_agent.worker.app import app

    assert "deploy_agent.plan" in app.tasks
