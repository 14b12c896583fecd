"""The worker keeps the user's AWS set-up intact on the realistic sandbox (issue 9, worker points 4-7).

Each test provisions its own service on the session sandbox (REALISTIC profile: AWS's rules that
moto skips are enforced, ECS timelines are time-scaled) and drives a real worker process.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from ecs_sandbox import Sandbox
from ecs_sandbox.blue_green import provision_blue_green
from ecs_sandbox.provision import provision_service
from sandbox_harness.stack import WorkerProcess
from tests.integration.conftest import unique
from tests.integration.test_rolling import build_request, publish, served_version, service_td
from tests.integration.test_traffic_strategies import bg_request, snapshot, wait_until_gone

pytestmark = pytest.mark.integration


class TestListenerRules:
    def test_a_rule_forwarding_to_blue_moves_with_the_listener_and_is_restored_exactly(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Point 7: a path rule to blue is shifted with the default action; afterwards it is as it was."""
        cluster, service = "rules", unique("web")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        elbv2 = boto3.client("elbv2")
        rule_arn = elbv2.create_rule(
            ListenerArn=setup.listener_arn,
            Priority=7,
            Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/version*"]}}],
            Actions=[{"Type": "forward", "TargetGroupArn": setup.target_group_arn}],
        )["Rules"][0]["RuleArn"]
        rule_before = _rule_actions(setup.listener_arn, rule_arn)
        before = snapshot(setup, cluster, service)
        request = bg_request(setup, cluster, service, push_app("v2"))
        result = publish(request)
        assert result["outcome"] == "succeeded", result
        assert served_version(setup) == "v2"  # through the rule, now on blue again
        assert _rule_actions(setup.listener_arn, rule_arn) == rule_before
        assert snapshot(setup, cluster, service)["listener"] == before["listener"]
        wait_until_gone(cluster, f"{service}-green")

    def test_a_rule_splitting_blue_with_another_group_is_rejected_untouched(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Point 7: a rule whose split the worker cannot keep is a rejected preflight; nothing changes."""
        cluster, service = "rules", unique("split")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        elbv2 = boto3.client("elbv2")
        model = elbv2.describe_target_groups(TargetGroupArns=[setup.target_group_arn])["TargetGroups"][0]
        other = elbv2.create_target_group(
            Name=f"{service[:20]}-other", Protocol="HTTP", Port=8080, VpcId=model["VpcId"], TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        rule_arn = elbv2.create_rule(
            ListenerArn=setup.listener_arn,
            Priority=8,
            Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/split*"]}}],
            Actions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": setup.target_group_arn, "Weight": 50},
                            {"TargetGroupArn": other, "Weight": 50},
                        ]
                    },
                }
            ],
        )["Rules"][0]["RuleArn"]
        before = snapshot(setup, cluster, service)
        result = publish(bg_request(setup, cluster, service, push_app("v2")))
        assert result["outcome"] == "rejected", result
        assert any(rule_arn in e["problem"] for e in result["errors"]), result["errors"]
        assert snapshot(setup, cluster, service) == before


class TestGreenTargetGroup:
    def test_a_green_group_no_load_balancer_uses_is_rejected_before_create_service(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Point 6: a green group that no listener or rule uses is a rejected preflight; nothing created."""
        cluster, service = "tg", unique("lonely")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        elbv2 = boto3.client("elbv2")
        model = elbv2.describe_target_groups(TargetGroupArns=[setup.target_group_arn])["TargetGroups"][0]
        lonely = elbv2.create_target_group(
            Name=f"{service[:20]}-lone", Protocol="HTTP", Port=8080, VpcId=model["VpcId"], TargetType="ip"
        )["TargetGroups"][0]
        assert not lonely.get("LoadBalancerArns")  # the sandbox's CreateService would refuse it
        request = bg_request(setup, cluster, service, push_app("v2"))
        lb = request["strategy"]["load_balancer"]
        lb["green_target_group_arn"] = lonely["TargetGroupArn"]
        lb["test_listener_arn"] = lb["test_url"] = None
        before = snapshot(setup, cluster, service)
        result = publish(request)
        assert result["outcome"] == "rejected", result
        assert result["errors"][0]["field"] == "strategy.load_balancer.green_target_group_arn"
        assert "not used by any load balancer" in result["errors"][0]["problem"]
        assert snapshot(setup, cluster, service) == before


class TestLogGroups:
    def test_a_users_missing_log_group_is_refused_before_the_service_changes(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Point 5: the message's definition names an awslogs group that does not exist: rejected at
        register, naming the group, nothing registered, the service untouched."""
        cluster, service = "logs", unique("nolog")
        svc = provision_service(sandbox, cluster, service, push_app("v1"), desired_count=1)
        td_before = service_td(cluster, service)
        request = {
            "deployment_id": unique("log"),
            "cluster_name": cluster,
            "service_name": service,
            "image": {"uri": push_app("v2")},
            "task_definition": {
                "family": f"{service}-td",
                "cpu": 256,
                "memory": "512",
                "container_definitions": [
                    {
                        "name": "app",
                        "port_mappings": [{"container_port": 8080}],
                        "log_configuration": {
                            "logDriver": "awslogs",
                            "options": {
                                "awslogs-group": "/team/missing",
                                "awslogs-region": "us-east-1",
                                "awslogs-stream-prefix": "app",
                            },
                        },
                    }
                ],
            },
            "timeout_seconds": 120,
        }
        result = publish(request)
        assert result["outcome"] == "rejected", result
        assert "/team/missing" in result["error"]["message"]
        assert result["task_definition_arn"] is None
        assert service_td(cluster, service) == td_before
        assert served_version(svc) == "v1"

    def test_the_group_the_worker_names_is_created_and_tasks_start(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Point 5: a definition without logConfiguration gets /ecs/<family>, which the worker creates."""
        cluster, service = "logs", unique("mklog")
        svc = provision_service(sandbox, cluster, service, push_app("v1"), desired_count=1)
        family = boto3.client("ecs").describe_task_definition(taskDefinition=svc.task_definition_arn)[
            "taskDefinition"
        ]["family"]
        result = publish(
            {
                "deployment_id": unique("log"),
                "cluster_name": cluster,
                "service_name": service,
                "image": {"uri": push_app("v2")},
                "timeout_seconds": 120,
            }
        )
        assert result["outcome"] == "succeeded", result
        groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{family}")["logGroups"]
        assert [g["logGroupName"] for g in groups] == [f"/ecs/{family}"]
        assert served_version(svc) == "v2"

        # The next deployment's running revision writes to that group already: no Logs call at all.
        logs_calls = sum(n for (api, _), n in sandbox.moto.api_calls().items() if api == "logs")
        again = {"deployment_id": unique("log"), "cluster_name": cluster, "service_name": service}
        result = publish({**again, "image": {"uri": push_app("v3")}, "timeout_seconds": 120})
        assert result["outcome"] == "succeeded", result
        assert sum(n for (api, _), n in sandbox.moto.api_calls().items() if api == "logs") == logs_calls
        assert served_version(svc) == "v3"


class TestImmutableTags:
    def test_a_hardened_repository_is_kept_and_a_taken_immutable_tag_fails_the_push_stage(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Point 4: IMMUTABLE + scan on push survive a deployment that does not name them; another
        build under a taken tag fails at push (ECR would refuse it), before ECS is touched.

        (Each build carries its deployment id as a label, so a new deployment's build is another
        image; the reuse of a tag that holds *our* build, a redelivered push, is shown by
        tests/core/test_image_tags.py and tests/adapters/test_ecr.py::TestImageByTag.)"""
        cluster, service = "ecr", unique("imm")
        ecr = boto3.client("ecr")
        repository = f"imm-{service[-8:]}"
        ecr.create_repository(
            repositoryName=repository,
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
        )
        svc = provision_service(sandbox, cluster, service, push_app("v1"), desired_count=1)
        first = build_request(svc, cluster, service, "v7")
        first["image"] = {"repository": repository, "tag": "release-7"}
        done = publish(first)
        assert done["outcome"] == "succeeded", (done["error"], done["stages"])
        repo = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
        assert repo["imageTagMutability"] == "IMMUTABLE"
        assert repo["imageScanningConfiguration"]["scanOnPush"] is True
        td_before = service_td(cluster, service)
        other = build_request(svc, cluster, service, "v8")
        other["image"] = {"repository": repository, "tag": "release-7"}
        refused = publish(other)
        assert refused["outcome"] == "failed", refused
        assert refused["error"]["type"] == "push_failed"
        assert "already exists" in refused["error"]["message"]
        assert refused["task_definition_arn"] is None
        assert service_td(cluster, service) == td_before
        assert served_version(svc) == "v7"


def _rule_actions(listener_arn: str, rule_arn: str) -> list[dict[str, Any]]:
    rules = boto3.client("elbv2").describe_rules(ListenerArn=listener_arn)["Rules"]
    return [dict(a) for a in next(r for r in rules if r["RuleArn"] == rule_arn)["Actions"]]
