"""Blue-green, canary and linear through the sandbox's weighted load balancer, under a steady request load."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import boto3
import pytest
import redis

from ecs_sandbox import Sandbox
from ecs_sandbox.blue_green import provision_blue_green
from sandbox_harness.stack import WorkerProcess
from tests.integration.conftest import DBS, REDIS_URL, unique
from tests.integration.load import Load
from tests.integration.test_rolling import publish, served_version
from tests.support import wait_until

pytestmark = pytest.mark.integration

MUTATING = ("Create", "Update", "Modify", "Register", "Delete", "Put", "Set", "Deregister", "Run", "Stop")


def snapshot(setup: Any, cluster: str, service: str) -> dict[str, Any]:
    """What must be exactly as before after a failed deployment."""
    ecs, elbv2 = boto3.client("ecs"), boto3.client("elbv2")
    arns = ecs.list_services(cluster=cluster)["serviceArns"]
    described = ecs.describe_services(cluster=cluster, services=arns)["services"] if arns else []
    return {
        "listener": elbv2.describe_listeners(ListenerArns=[setup.listener_arn])["Listeners"][0][
            "DefaultActions"
        ],
        "services": sorted(
            (s["serviceName"], s["taskDefinition"]) for s in described if s["status"] == "ACTIVE"
        ),
        "service_td": next(s["taskDefinition"] for s in described if s["serviceName"] == service),
    }


def wait_until_gone(cluster: str, prefix: str, timeout: float = 30) -> None:
    """Wait until no ACTIVE or DRAINING service whose name starts with ``prefix`` is left."""
    ecs = boto3.client("ecs")

    def left() -> list[str]:
        arns = [
            a
            for a in ecs.list_services(cluster=cluster)["serviceArns"]
            if a.rsplit("/", 1)[-1].startswith(prefix)
        ]
        described = ecs.describe_services(cluster=cluster, services=arns)["services"] if arns else []
        return [s["serviceName"] for s in described if s["status"] != "INACTIVE"]

    wait_until(lambda: not left(), what=f"services {prefix}* to be gone", timeout=timeout, interval=0.2)


def bg_request(setup: Any, cluster: str, service: str, image: str, **strategy: Any) -> dict[str, Any]:
    return {
        "deployment_id": unique("bg"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        "strategy": {
            "type": strategy.pop("type", "blue_green"),
            "load_balancer": {
                "listener_arn": setup.listener_arn,
                "blue_target_group_arn": setup.target_group_arn,
                "green_target_group_arn": setup.green_target_group_arn,
                "test_listener_arn": setup.test_listener_arn,
                "test_url": setup.test_url,
                "production_url": f"{setup.url}/version",
            },
            **strategy,
        },
        "health_check": {
            "url": f"{setup.url}/health",
            "healthy_threshold": 2,
            "unhealthy_threshold": 2,
            "timeout_seconds": 2,
        },
        "timeout_seconds": 120,
    }


def events(deployment_id: str) -> list[dict[str, Any]]:
    import json

    store = redis.Redis.from_url(f"{REDIS_URL}/{DBS['state_db']}")
    return [json.loads(e) for e in store.lrange(f"deploy-agent:events:{deployment_id}", 0, -1)]


class TestBlueGreen:
    def test_switch_under_load_drops_nothing(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Blue-green under a steady load: 0 failed requests, the new version serves, no green left."""
        cluster, service = "bg", unique("web")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=2)
        before = snapshot(setup, cluster, service)
        with Load(f"{setup.url}/version", rate=60) as load:
            result = publish(bg_request(setup, cluster, service, push_app("v2")))
            time.sleep(0.5)
        print(
            f"\nblue-green under load: {len(load.answers)} requests, {len(load.failures)} failed, "
            f"worker probe {result['zero_downtime']}"
        )
        assert result["outcome"] == "succeeded", (result["error"], result["stages"])
        assert load.failures == [], load.failures[:5]
        assert len(load.answers) > 100
        assert {a.body for a in load.answers} == {"v1", "v2"}
        assert served_version(setup) == "v2"
        wait_until_gone(cluster, f"{service}-green")
        after = snapshot(setup, cluster, service)
        assert after["listener"] == before["listener"]
        assert after["service_td"] == result["task_definition_arn"]
        assert result["zero_downtime"]["failures"] == 0
        assert result["zero_downtime"]["requests"] > 0

    def test_seed_order_loses_requests(self, sandbox: Sandbox, push_app: Any) -> None:
        """The seed's order (delete green while the listener points at it) drops requests on the sandbox."""
        cluster, service = "bg", unique("seed")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=2)
        ecs, elbv2 = boto3.client("ecs"), boto3.client("elbv2")
        template = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
        td = ecs.register_task_definition(**_td_kwargs(setup.task_definition_arn, push_app("v2")))
        td_arn = td["taskDefinition"]["taskDefinitionArn"]
        with Load(f"{setup.url}/version", rate=60) as load:
            green = f"{service}-green"
            ecs.create_service(
                cluster=cluster,
                serviceName=green,
                taskDefinition=td_arn,
                desiredCount=2,
                loadBalancers=[
                    {**template["loadBalancers"][0], "targetGroupArn": setup.green_target_group_arn}
                ],
                networkConfiguration=template["networkConfiguration"],
                launchType="FARGATE",
            )
            _wait_healthy(elbv2, setup.green_target_group_arn, 2)
            # All traffic to green; blue stays on the listener at weight 0, so ELB keeps checking it
            # (a group no listener uses is "unused", and ECS could not see blue's new tasks healthy).
            elbv2.modify_listener(
                ListenerArn=setup.listener_arn,
                DefaultActions=[
                    {
                        "Type": "forward",
                        "ForwardConfig": {
                            "TargetGroups": [
                                {"TargetGroupArn": setup.green_target_group_arn, "Weight": 1},
                                {"TargetGroupArn": setup.target_group_arn, "Weight": 0},
                            ]
                        },
                    }
                ],
            )
            ecs.update_service(cluster=cluster, service=service, taskDefinition=td_arn)
            _wait_healthy(elbv2, setup.target_group_arn, 2, version_changed=True)
            # The seed's gap: green goes away while the listener still sends all traffic to it.
            ecs.delete_service(cluster=cluster, service=green, force=True)
            wait_until_gone(cluster, green)
            elbv2.modify_listener(
                ListenerArn=setup.listener_arn,
                DefaultActions=[{"Type": "forward", "TargetGroupArn": setup.target_group_arn}],
            )
            time.sleep(0.5)
        print(f"\nseed order under load: {len(load.answers)} requests, {len(load.failures)} failed")
        assert len(load.failures) > 0, "the seed's order should lose requests"

    def test_green_never_healthy_leaves_everything_as_before(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """A green that never becomes healthy is deleted; listener, services and definitions are as before."""
        cluster, service = "bg", unique("nogreen")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        before = snapshot(setup, cluster, service)
        result = publish(bg_request(setup, cluster, service, push_app("v3", "crash")))
        assert result["outcome"] == "rolled_back", result
        wait_until_gone(cluster, f"{service}-green")
        assert snapshot(setup, cluster, service) == before
        assert served_version(setup) == "v1"

    def test_failure_after_the_switch_switches_back(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """A health failure during bake (traffic already on green) restores the listener and deletes green."""
        cluster, service = "bg", unique("bake")
        setup = provision_blue_green(
            sandbox, cluster, service, image=push_app("v1"), desired_count=1, health_path="/version"
        )
        before = snapshot(setup, cluster, service)
        request = bg_request(setup, cluster, service, push_app("v4", "unhealthy"), bake_seconds=5)
        request["strategy"]["load_balancer"]["test_url"] = None  # the test listener would catch it earlier
        result = publish(request)
        assert result["outcome"] == "rolled_back", result
        assert result["rollback"]["trigger"] == "health_check"
        assert "bake" in result["error"]["message"]
        kinds = [e["event"] for e in events(request["deployment_id"])]
        assert kinds.index("traffic_shifted") < kinds.index("traffic_restored")
        wait_until_gone(cluster, f"{service}-green")
        assert snapshot(setup, cluster, service) == before
        assert served_version(setup) == "v1"

    def test_deadline_during_bake_times_out_and_restores(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """The deadline passing during bake ends timed_out with everything back as before."""
        cluster, service = "bg", unique("late")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        before = snapshot(setup, cluster, service)
        request = bg_request(setup, cluster, service, push_app("v2"), bake_seconds=600)
        request["timeout_seconds"] = 30
        result = publish(request)
        assert result["outcome"] == "timed_out", result
        wait_until_gone(cluster, f"{service}-green")
        assert snapshot(setup, cluster, service) == before
        assert served_version(setup) == "v1"


class TestCanary:
    def test_steps_send_the_share_they_say(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Canary 10 -> 50 -> 100: at each step the share reaching the canary is near the weight."""
        cluster, service = "canary", unique("web")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=2)
        steps = [
            {"weight": 10, "pause_seconds": 4},
            {"weight": 50, "pause_seconds": 4},
            {"weight": 100, "pause_seconds": 2},
        ]
        request = bg_request(setup, cluster, service, push_app("v2"), type="canary", steps=steps)
        with Load(f"{setup.url}/version", rate=120, threads=4) as load:
            result = publish(request)
        assert result["outcome"] == "succeeded", result
        assert load.failures == []
        shifts = [e for e in events(request["deployment_id"]) if e["event"] == "traffic_shifted"]
        assert len(shifts) == 3
        for shift, step in zip(shifts, steps, strict=True):
            start = datetime.fromisoformat(shift["at"]).timestamp() + 0.3
            share, n = load.share("v2", start, start + step["pause_seconds"] - 0.5)
            print(f"\ncanary weight {step['weight']}%: observed {share * 100:.1f}% of {n} requests")
            assert n > 50, n
            assert abs(share * 100 - step["weight"]) <= 8, (step, share, n)
        assert served_version(setup) == "v2"
        wait_until_gone(cluster, f"{service}-canary")

    def test_alarm_in_step_two_rolls_back_naming_the_step(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """An alarm going off during step 2 sets the canary weight to 0, deletes it, and names step 2."""
        cluster, service = "canary", unique("alarm")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        before = snapshot(setup, cluster, service)
        alarm = unique("errors")
        cloudwatch = boto3.client("cloudwatch")
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            MetricName="5xx",
            Namespace="web",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
        steps = [{"weight": 10, "pause_seconds": 1}, {"weight": 50, "pause_seconds": 60}, {"weight": 100}]
        request = bg_request(setup, cluster, service, push_app("v2"), type="canary", steps=steps)
        request["rollback"] = {"alarm_names": [alarm]}

        def fire_in_step_two() -> None:
            wait_until(
                lambda: any(
                    e.get("label", "").startswith("step 2") for e in events(request["deployment_id"])
                ),
                what="step 2",
                timeout=90,
                interval=0.1,
            )
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="5xx spike")

        firing = threading.Thread(target=fire_in_step_two, daemon=True)
        firing.start()
        result = publish(request)
        firing.join(5)
        assert result["outcome"] == "rolled_back", result
        assert result["rollback"]["trigger"] == "alarm"
        assert "step 2" in result["rollback"]["reason"]
        assert alarm in result["rollback"]["reason"]
        wait_until_gone(cluster, f"{service}-canary")
        assert snapshot(setup, cluster, service) == before
        assert served_version(setup) == "v1"


class TestLinear:
    def test_equal_steps_send_the_share_they_say(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Linear in 25% steps under load: each step's observed share on the new release is near
        25, 50, 75 and 100 percent, nothing is dropped, and the original ends on the new release."""
        cluster, service = "linear", unique("web")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=2)
        request = bg_request(
            setup, cluster, service, push_app("v2"), type="linear", step_percent=25, step_pause_seconds=3
        )
        with Load(f"{setup.url}/version", rate=120, threads=4) as load:
            result = publish(request)
        assert result["outcome"] == "succeeded", result
        assert load.failures == []
        shifts = [e for e in events(request["deployment_id"]) if e["event"] == "traffic_shifted"]
        assert [e["label"] for e in shifts] == [
            "step 1 (25%)",
            "step 2 (50%)",
            "step 3 (75%)",
            "step 4 (100%)",
        ]
        for shift, weight in zip(shifts[:3], (25, 50, 75), strict=True):
            start = datetime.fromisoformat(shift["at"]).timestamp() + 0.3
            share, n = load.share("v2", start, start + 2.5)
            print(f"\nlinear weight {weight}%: observed {share * 100:.1f}% of {n} requests")
            assert n > 50, n
            assert abs(share * 100 - weight) <= 10, (weight, share, n)
        assert served_version(setup) == "v2"
        wait_until_gone(cluster, f"{service}-linear")


class TestPreflight:
    @pytest.mark.parametrize(
        ("breakage", "field"),
        [
            ("missing_listener", "strategy.load_balancer.listener_arn"),
            ("missing_green", "strategy.load_balancer.green_target_group_arn"),
            ("listener_on_green", "strategy.load_balancer.listener_arn"),
            ("instance_green", "strategy.load_balancer.green_target_group_arn"),
            ("missing_alarm", "rollback.alarm_names"),
        ],
        ids=[
            "the listener does not exist",
            "the green target group does not exist",
            "the listener already forwards to green",
            "the green group's targets are instances",
            "an alarm that does not exist",
        ],
    )
    def test_misconfiguration_is_rejected_untouched(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any, breakage: str, field: str
    ) -> None:
        """A load-balancer setup that cannot work is refused before anything changes."""
        cluster, service = "pre", unique("pf")
        setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        request = bg_request(setup, cluster, service, push_app("v2"))
        lb = request["strategy"]["load_balancer"]
        elbv2 = boto3.client("elbv2")
        if breakage == "missing_listener":
            lb["listener_arn"] = setup.listener_arn[:-6] + "000000"
        elif breakage == "missing_green":
            lb["green_target_group_arn"] = setup.green_target_group_arn[:-6] + "000000"
        elif breakage == "listener_on_green":
            elbv2.modify_listener(
                ListenerArn=setup.listener_arn,
                DefaultActions=[
                    {
                        "Type": "forward",
                        "ForwardConfig": {
                            "TargetGroups": [
                                {"TargetGroupArn": setup.target_group_arn, "Weight": 50},
                                {"TargetGroupArn": setup.green_target_group_arn, "Weight": 50},
                            ]
                        },
                    }
                ],
            )
        elif breakage == "instance_green":
            vpc = elbv2.describe_target_groups(TargetGroupArns=[setup.green_target_group_arn])[
                "TargetGroups"
            ][0]
            lb["green_target_group_arn"] = elbv2.create_target_group(
                Name=unique("inst")[:32],
                Protocol="HTTP",
                Port=8080,
                VpcId=vpc["VpcId"],
                TargetType="instance",
            )["TargetGroups"][0]["TargetGroupArn"]
        elif breakage == "missing_alarm":
            request["rollback"] = {"alarm_names": ["no-such-alarm"]}
        before = snapshot(setup, cluster, service)
        calls_before = sandbox.moto.api_calls()
        result = publish(request)
        assert result["outcome"] == "rejected", result
        assert any(e["field"] == field for e in result["errors"]), result["errors"]
        new_calls = {k: v - calls_before.get(k, 0) for k, v in sandbox.moto.api_calls().items()}
        assert not [k for k, v in new_calls.items() if v and k[1].startswith(MUTATING)]
        assert snapshot(setup, cluster, service) == before


def _td_kwargs(arn: str, image: str) -> dict[str, Any]:
    td = boto3.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
    keep = ("family", "containerDefinitions", "cpu", "memory", "networkMode", "requiresCompatibilities")
    kwargs = {k: td[k] for k in keep if k in td}
    kwargs["containerDefinitions"] = [{**c, "image": image} for c in td["containerDefinitions"]]
    return kwargs


def _wait_healthy(
    elbv2: Any, tg: str, count: int, version_changed: bool = False, timeout: float = 60
) -> None:

    def settled() -> bool:
        health = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
        healthy = [h for h in health if h["TargetHealth"]["State"] == "healthy"]
        return len(healthy) >= count and (not version_changed or len(health) == count)

    wait_until(settled, what=f"{count} healthy targets in {tg}", timeout=timeout, interval=0.1)
