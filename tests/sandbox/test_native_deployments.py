"""The sandbox plays ECS's native BLUE_GREEN / LINEAR / CANARY controller, through real boto3 calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests

from ecs_sandbox import NativeSetup, Sandbox, provision_native
from ecs_sandbox.load_balancer import TARGET_HEADER, target_group_name
from tests.support import wait_until

pytestmark = pytest.mark.integration

CLUSTER, SERVICE = "app", "web"


def _deploy(sandbox: Sandbox, setup: NativeSetup, image: str) -> str:
    """Register a revision running ``image``, UpdateService to it; return the new ServiceDeployment ARN."""
    ecs = sandbox.client("ecs")
    current = ecs.describe_task_definition(taskDefinition=setup.task_definition_arn)["taskDefinition"]
    kept = ("family", "networkMode", "requiresCompatibilities", "cpu", "memory")
    arn = ecs.register_task_definition(
        **{k: current[k] for k in kept if k in current},
        containerDefinitions=[{**c, "image": image} for c in current["containerDefinitions"]],
    )["taskDefinition"]["taskDefinitionArn"]
    before = {d["serviceDeploymentArn"] for d in _list(sandbox)}
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=arn)
    fresh = [d for d in _list(sandbox) if d["serviceDeploymentArn"] not in before]
    assert len(fresh) == 1, fresh
    return str(fresh[0]["serviceDeploymentArn"])


def _list(sandbox: Sandbox, **filters: Any) -> list[dict[str, Any]]:
    reply = sandbox.client("ecs").list_service_deployments(cluster=CLUSTER, service=SERVICE, **filters)
    return list(reply["serviceDeployments"])


def _describe(sandbox: Sandbox, arn: str) -> dict[str, Any]:
    reply = sandbox.client("ecs").describe_service_deployments(serviceDeploymentArns=[arn])
    return dict(reply["serviceDeployments"][0])


def _reaches(sandbox: Sandbox, arn: str, status: str, timeout: float = 40.0) -> dict[str, Any]:
    return wait_until(
        lambda: (d := _describe(sandbox, arn))["status"] == status and d,
        what=f"service deployment {status}",
        timeout=timeout,
    )


def _awaiting(sandbox: Sandbox, arn: str, timeout: float = 30.0) -> dict[str, Any]:
    """Return the deployment once a hook is AWAITING_ACTION."""
    return wait_until(
        lambda: (
            (d := _describe(sandbox, arn))["status"] == "IN_PROGRESS"
            and any(h["status"] == "AWAITING_ACTION" for h in d.get("lifecycleHookDetails", []))
            and d
        ),
        what="a hook awaiting action",
        timeout=timeout,
    )


def _served_by(url: str, requests_count: int = 40) -> Counter[str]:
    """Return how many of ``requests_count`` requests each target group served."""
    seen: Counter[str] = Counter()
    with requests.Session() as session:
        for _ in range(requests_count):
            response = session.get(f"{url}/version", timeout=5)
            assert response.status_code == 200, response.text
            seen[response.headers[TARGET_HEADER].rsplit("/", 1)[0]] += 1
    return seen


class TestBlueGreen:
    def test_blue_green_ends_successful_with_production_on_green(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """A BLUE_GREEN deployment walks to SUCCESSFUL; production traffic is then all on the green group."""
        setup = provision_native(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
        green = target_group_name(setup.alternate_target_group_arn)
        assert set(_served_by(setup.url)) == {target_group_name(setup.target_group_arn)}

        arn = _deploy(sandbox, setup, web_image("v2"))
        done = _reaches(sandbox, arn, "SUCCESSFUL")

        assert done["lifecycleStage"] == "CLEAN_UP"
        assert _served_by(setup.url) == Counter({green: 40})
        assert requests.get(f"{setup.url}/version", timeout=5).text.strip() == "v2"
        service = sandbox.client("ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        assert [(d["status"], d["rolloutState"]) for d in service["deployments"]] == [
            ("PRIMARY", "COMPLETED")
        ]

    def test_next_deployment_alternates_target_groups(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Each revision records its target group; the next deployment goes back to the primary group."""
        setup = provision_native(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
        first = _deploy(sandbox, setup, web_image("v2"))
        _reaches(sandbox, first, "SUCCESSFUL")
        second = _deploy(sandbox, setup, web_image("v3"))
        _reaches(sandbox, second, "SUCCESSFUL")

        revisions = [_describe(sandbox, arn)["targetServiceRevision"]["arn"] for arn in (first, second)]
        described = sandbox.client("ecs").describe_service_revisions(serviceRevisionArns=revisions)
        groups = [
            r["resolvedConfiguration"]["loadBalancers"][0]["targetGroupArn"]
            for r in described["serviceRevisions"]
        ]
        assert groups == [setup.alternate_target_group_arn, setup.target_group_arn]
        assert _served_by(setup.url) == Counter({target_group_name(setup.target_group_arn): 40})
        assert [d["serviceDeploymentArn"] for d in _list(sandbox, status=["SUCCESSFUL"])][:2] == [
            second,
            first,
        ]
        page = sandbox.client("ecs").list_service_deployments(cluster=CLUSTER, service=SERVICE, maxResults=1)
        assert len(page["serviceDeployments"]) == 1
        assert page["nextToken"]

    def test_unknown_arns_are_failures(self, sandbox: Sandbox, web_image: Callable[..., str]) -> None:
        """DescribeServiceDeployments/Revisions answer unknown ARNs in ``failures`` as MISSING."""
        ecs = sandbox.client("ecs")
        arn = "arn:aws:ecs:us-east-1:123456789012:service-deployment/app/web/nope"
        reply = ecs.describe_service_deployments(serviceDeploymentArns=[arn])
        assert reply["serviceDeployments"] == []
        assert reply["failures"] == [{"arn": arn, "reason": "MISSING"}]
        revision = "arn:aws:ecs:us-east-1:123456789012:service-revision/app/web/1"
        assert (
            ecs.describe_service_revisions(serviceRevisionArns=[revision])["failures"][0]["arn"] == revision
        )


def _rule_weights(sandbox: Sandbox, rule_arn: str) -> dict[str, int]:
    rule = sandbox.client("elbv2").describe_rules(RuleArns=[rule_arn])["Rules"][0]
    groups = rule["Actions"][0].get("ForwardConfig", {}).get("TargetGroups", [])
    return {target_group_name(g["TargetGroupArn"]): int(g["Weight"]) for g in groups}


class TestLinearAndHooks:
    def test_linear_shares_follow_step_percent_at_each_pre_shift_hook(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """LINEAR 30%: held before every shift step, the production URL serves 0, 30, 60, 90% from green."""
        setup = provision_native(
            sandbox,
            CLUSTER,
            SERVICE,
            web_image("v1"),
            strategy="LINEAR",
            timeout_seconds=30,
            deployment_configuration={
                "linearConfiguration": {"stepPercent": 30.0, "stepBakeTimeInMinutes": 1}
            },
            pause_at=("PRE_PRODUCTION_TRAFFIC_SHIFT",),
        )
        green = target_group_name(setup.alternate_target_group_arn)
        arn = _deploy(sandbox, setup, web_image("v2"))
        ecs = sandbox.client("ecs")
        hooks_seen: list[str] = []
        for expected in (0.0, 30.0, 60.0, 90.0):
            held = _awaiting(sandbox, arn)
            assert held["lifecycleStage"] == "PRODUCTION_TRAFFIC_SHIFT"
            assert held["targetServiceRevision"]["requestedProductionTrafficWeight"] == expected
            served = _served_by(setup.url, 200)
            assert abs(100.0 * served[green] / 200 - expected) <= 12.0, (expected, served)
            hook = next(h for h in held["lifecycleHookDetails"] if h["status"] == "AWAITING_ACTION")
            assert hook["targetType"] == "PAUSE"
            assert hook["timeoutAction"] == "ROLLBACK"
            assert hook["expiresAt"]
            assert hook["hookId"] not in hooks_seen
            hooks_seen.append(hook["hookId"])
            ecs.continue_service_deployment(
                serviceDeploymentArn=arn, hookId=hook["hookId"], action="CONTINUE"
            )
        _reaches(sandbox, arn, "SUCCESSFUL")
        assert _served_by(setup.url) == Counter({green: 40})
        assert _rule_weights(sandbox, setup.test_rule_arn)[green] > 0

    def test_continue_refuses_a_wrong_hook_and_a_resolved_one(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """ContinueServiceDeployment refuses an unknown hookId and a hook no longer awaiting action."""
        setup = provision_native(
            sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30, pause_at=("POST_SCALE_UP",)
        )
        arn = _deploy(sandbox, setup, web_image("v2"))
        hook = _awaiting(sandbox, arn)["lifecycleHookDetails"][0]["hookId"]
        ecs = sandbox.client("ecs")
        with pytest.raises(ecs.exceptions.InvalidParameterException):
            ecs.continue_service_deployment(
                serviceDeploymentArn=arn, hookId="ecs-pause-nope", action="CONTINUE"
            )
        ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook, action="CONTINUE")
        with pytest.raises(ecs.exceptions.ClientException):
            ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook, action="CONTINUE")
        _reaches(sandbox, arn, "SUCCESSFUL")

    def test_hook_timeout_rolls_back(self, sandbox: Sandbox, web_image: Callable[..., str]) -> None:
        """A PAUSE hook nobody answers times out (TIMED_OUT); its ROLLBACK action rolls it back."""
        setup = provision_native(
            sandbox,
            CLUSTER,
            SERVICE,
            web_image("v1"),
            timeout_seconds=30,
            pause_at=("POST_SCALE_UP",),
            hook_timeout_minutes=1,
        )
        arn = _deploy(sandbox, setup, web_image("v2"))
        done = _reaches(sandbox, arn, "ROLLBACK_SUCCESSFUL")
        assert [h["status"] for h in done["lifecycleHookDetails"]] == ["TIMED_OUT"]
        assert "timed out" in done["rollback"]["reason"]
        assert done["rollback"]["serviceRevisionArn"] == done["sourceServiceRevisions"][0]["arn"]
        assert requests.get(f"{setup.url}/version", timeout=5).text.strip() == "v1"


class TestRollback:
    def test_stop_rollback_puts_traffic_back_on_blue(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """StopServiceDeployment(ROLLBACK) after the production shift: ROLLBACK_SUCCESSFUL, blue serves."""
        setup = provision_native(
            sandbox,
            CLUSTER,
            SERVICE,
            web_image("v1"),
            timeout_seconds=30,
            pause_at=("POST_PRODUCTION_TRAFFIC_SHIFT",),
        )
        blue, green = (
            target_group_name(a) for a in (setup.target_group_arn, setup.alternate_target_group_arn)
        )
        arn = _deploy(sandbox, setup, web_image("v2"))
        _awaiting(sandbox, arn)
        assert _served_by(setup.url) == Counter({green: 40})

        sandbox.client("ecs").stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
        done = _reaches(sandbox, arn, "ROLLBACK_SUCCESSFUL")

        assert done["rollback"]["reason"] == done["statusReason"]
        assert done["rollback"]["startedAt"]
        assert done["finishedAt"]
        assert _served_by(setup.url) == Counter({blue: 40})
        assert _rule_weights(sandbox, setup.production_rule_arn) == {blue: 1, green: 0}
        service = sandbox.client("ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        assert service["taskDefinition"] == setup.task_definition_arn
        assert [(d["status"], d["rolloutState"]) for d in service["deployments"]] == [
            ("PRIMARY", "COMPLETED")
        ]
        with pytest.raises(sandbox.client("ecs").exceptions.ConflictException):
            sandbox.client("ecs").stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")

    def test_circuit_breaker_rolls_back_green_that_cannot_start(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Crashing green tasks trip the circuit breaker (TRIGGERED, failures >= threshold): rolled back."""
        setup = provision_native(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
        arn = _deploy(sandbox, setup, web_image("v2", "crash"))
        done = _reaches(sandbox, arn, "ROLLBACK_SUCCESSFUL", timeout=60)
        breaker = done["deploymentCircuitBreaker"]
        assert breaker["status"] == "TRIGGERED"
        assert breaker["failureCount"] >= breaker["threshold"] == 3
        assert done["lifecycleStage"] == "SCALE_UP"
        assert set(_served_by(setup.url)) == {target_group_name(setup.target_group_arn)}

    def test_alarm_in_alarm_rolls_back(self, sandbox: Sandbox, web_image: Callable[..., str]) -> None:
        """A deployment alarm going to ALARM during the deployment rolls it back (alarms TRIGGERED)."""
        cloudwatch = sandbox.client("cloudwatch")
        cloudwatch.put_metric_alarm(
            AlarmName="web-5xx",
            MetricName="HTTPCode_Target_5XX_Count",
            Namespace="AWS/ApplicationELB",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanThreshold",
        )
        alarms = {"alarmNames": ["web-5xx"], "enable": True, "rollback": True}
        setup = provision_native(
            sandbox,
            CLUSTER,
            SERVICE,
            web_image("v1"),
            timeout_seconds=30,
            deployment_configuration={"alarms": alarms},
            pause_at=("POST_TEST_TRAFFIC_SHIFT",),
        )
        arn = _deploy(sandbox, setup, web_image("v2"))
        _awaiting(sandbox, arn)
        cloudwatch.set_alarm_state(AlarmName="web-5xx", StateValue="ALARM", StateReason="test")
        done = _reaches(sandbox, arn, "ROLLBACK_SUCCESSFUL")
        assert done["alarms"] == {
            "status": "TRIGGERED",
            "alarmNames": ["web-5xx"],
            "triggeredAlarmNames": ["web-5xx"],
        }
        assert requests.get(f"{setup.url}/version", timeout=5).text.strip() == "v1"


class TestCanaryAndAbort:
    def test_canary_holds_its_percent_then_shifts_the_rest(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """CANARY 20%: before the second shift green serves ~20% of production; the service lists both."""
        setup = provision_native(
            sandbox,
            CLUSTER,
            SERVICE,
            web_image("v1"),
            strategy="CANARY",
            timeout_seconds=30,
            deployment_configuration={
                "canaryConfiguration": {"canaryPercent": 20.0, "canaryBakeTimeInMinutes": 1}
            },
            pause_at=("PRE_PRODUCTION_TRAFFIC_SHIFT",),
        )
        green = target_group_name(setup.alternate_target_group_arn)
        arn = _deploy(sandbox, setup, web_image("v2"))
        ecs = sandbox.client("ecs")
        first = _awaiting(sandbox, arn)["lifecycleHookDetails"][0]["hookId"]
        ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=first)  # action defaults to CONTINUE
        held = wait_until(
            lambda: (d := _awaiting(sandbox, arn))["lifecycleHookDetails"][0]["hookId"] != first and d,
            what="the second shift's hook",
        )
        assert held["targetServiceRevision"]["requestedProductionTrafficWeight"] == 20.0
        served = _served_by(setup.url, 200)
        assert abs(100.0 * served[green] / 200 - 20.0) <= 10.0, served
        service = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        assert [(d["status"], d["rolloutState"]) for d in service["deployments"]] == [
            ("PRIMARY", "IN_PROGRESS"),
            ("ACTIVE", "COMPLETED"),
        ]
        ecs.continue_service_deployment(
            serviceDeploymentArn=arn, hookId=held["lifecycleHookDetails"][0]["hookId"], action="CONTINUE"
        )
        _reaches(sandbox, arn, "SUCCESSFUL")
        assert _served_by(setup.url) == Counter({green: 40})

    def test_abort_ends_stopped_without_a_rollback(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """StopServiceDeployment(ABORT) ends the deployment STOPPED, with no rollback record; blue serves."""
        setup = provision_native(
            sandbox,
            CLUSTER,
            SERVICE,
            web_image("v1"),
            timeout_seconds=30,
            pause_at=("POST_TEST_TRAFFIC_SHIFT",),
        )
        arn = _deploy(sandbox, setup, web_image("v2"))
        _awaiting(sandbox, arn)
        sandbox.client("ecs").stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")
        done = _reaches(sandbox, arn, "STOPPED")
        assert "rollback" not in done
        assert done["stoppedAt"]
        assert set(_served_by(setup.url)) == {target_group_name(setup.target_group_arn)}
        assert [d["serviceDeploymentArn"] for d in _list(sandbox, status=["STOPPED"])] == [arn]
