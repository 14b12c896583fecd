"""The pure decisions of ECS's native strategies: steps, hook points, configuration, causes."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_agent.core.ecs_native import (
    NativeShape,
    assess_rollback_cause,
    decide_hook_point,
    plan_deployment_configuration,
    plan_hook_points,
    plan_hook_timeout,
    plan_production_weights,
    rule_listener_arn,
)
from deploy_agent.core.outcome import Trigger


def shape(strategy: str, **kw: Any) -> NativeShape:
    return NativeShape(
        strategy, bake_minutes=kw.pop("bake", 0), hook_timeout_minutes=kw.pop("timeout", 60), **kw
    )


class TestWeights:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            pytest.param(shape("BLUE_GREEN"), [100.0], id="blue/green moves everything at once"),
            pytest.param(shape("CANARY", canary_percent=10.0), [10.0, 100.0], id="canary is two steps"),
            pytest.param(shape("LINEAR", step_percent=25.0), [25.0, 50.0, 75.0, 100.0], id="linear quarters"),
            pytest.param(
                shape("LINEAR", step_percent=30.0), [30.0, 60.0, 90.0, 100.0], id="the last step is capped"
            ),
            pytest.param(
                shape("LINEAR", step_percent=33.3), [33.3, 66.6, 99.9, 100.0], id="tenths keep their sum"
            ),
            pytest.param(shape("LINEAR", step_percent=100.0), [100.0], id="one linear step of 100"),
        ],
    )
    def test_production_share_after_each_shift(self, given: NativeShape, expected: list[float]) -> None:
        """ECS's steps, as the share of production traffic on the new revision after each."""
        assert plan_production_weights(given) == expected


class TestHookPoints:
    def test_points_are_test_then_before_production_then_one_per_step(self) -> None:
        """A linear deployment of halves fires four times: test, before production, after each step."""
        assert plan_hook_points(shape("LINEAR", step_percent=50.0)) == [
            "test traffic",
            "before production traffic",
            "step 1 (50%)",
            "step 2 (100%)",
        ]

    @pytest.mark.parametrize(
        ("stage", "answered", "expected"),
        [
            pytest.param(
                "POST_TEST_TRAFFIC_SHIFT", 0, "test traffic", id="the first firing is the test point"
            ),
            pytest.param(
                "POST_TEST_TRAFFIC_SHIFT", 1, "before production traffic", id="then before production"
            ),
            pytest.param(
                "PRODUCTION_TRAFFIC_SHIFT", 2, "step 1 (50%)", id="a later firing judges the step taken"
            ),
            pytest.param(
                "POST_PRODUCTION_TRAFFIC_SHIFT", 2, "step 2 (100%)", id="the post-production stage is last"
            ),
            pytest.param(
                "PRODUCTION_TRAFFIC_SHIFT", 9, "step 1 (50%)", id="extra firings stay on the last step"
            ),
        ],
    )
    def test_which_point_a_firing_is(self, stage: str, answered: int, expected: str) -> None:
        """PRE_PRODUCTION_TRAFFIC_SHIFT never shows as a stage: firings are counted."""
        points = plan_hook_points(shape("LINEAR", step_percent=50.0))
        assert decide_hook_point(stage, answered, points) == expected


class TestConfiguration:
    def test_the_services_own_settings_and_lambda_hooks_are_kept(self) -> None:
        """Percents, breaker and Lambda hooks survive; an earlier PAUSE hook is replaced by ours."""
        lambda_hook = {
            "targetType": "AWS_LAMBDA",
            "hookTargetArn": "arn:aws:lambda:x",
            "lifecycleStages": ["PRE_SCALE_UP"],
        }
        current = {
            "maximumPercent": 200,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "lifecycleHooks": [lambda_hook, {"targetType": "PAUSE", "lifecycleStages": ["PRE_SCALE_UP"]}],
            "strategy": "ROLLING",
        }
        config = plan_deployment_configuration(
            shape("CANARY", canary_percent=10.0, canary_bake_minutes=2), current, []
        )
        assert config["maximumPercent"] == 200
        assert config["deploymentCircuitBreaker"]["enable"] is True
        assert config["lifecycleHooks"][0] == lambda_hook
        assert len(config["lifecycleHooks"]) == 2
        assert config["canaryConfiguration"] == {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 2}
        assert config["strategy"] == "CANARY"
        assert "linearConfiguration" not in config

    def test_the_messages_alarms_are_handed_to_ecs(self) -> None:
        """ECS rolls back on the rollback's CloudWatch alarms itself, during its bake too."""
        config = plan_deployment_configuration(shape("BLUE_GREEN", bake=5), {}, ["errors"])
        assert config["alarms"] == {"alarmNames": ["errors"], "enable": True, "rollback": True}
        assert config["bakeTimeInMinutes"] == 5

    @pytest.mark.parametrize(
        ("minutes", "approval", "expected"),
        [(60, None, 60), (60, 7200.0, 121), (60, 600.0, 60), (1, 10**7, 20_160)],
    )
    def test_the_hook_outlasts_an_approval(self, minutes: int, approval: float | None, expected: int) -> None:
        """A human's approval time stretches the hook's timeout, up to ECS's 14 days."""
        assert plan_hook_timeout(minutes, approval) == expected


class TestCause:
    @pytest.mark.parametrize(
        ("deployment", "trigger"),
        [
            pytest.param(
                {"deploymentCircuitBreaker": {"status": "TRIGGERED"}}, Trigger.CIRCUIT_BREAKER, id="breaker"
            ),
            pytest.param(
                {"alarms": {"status": "TRIGGERED", "triggeredAlarmNames": ["5xx"]}}, Trigger.ALARM, id="alarm"
            ),
            pytest.param(
                {"lifecycleHookDetails": [{"hookId": "h", "status": "TIMED_OUT"}]},
                Trigger.DEADLINE,
                id="hook",
            ),
            pytest.param({"statusReason": "stopped"}, Trigger.ECS_ROLLBACK, id="anything else"),
        ],
    )
    def test_why_ecs_rolled_back(self, deployment: dict[str, Any], trigger: Trigger) -> None:
        """The trigger follows the deployment's own evidence."""
        assert assess_rollback_cause(deployment).trigger is trigger


def test_a_rule_arn_names_its_listener() -> None:
    """listener-rule/app/lb/id/lid/rid belongs to listener/app/lb/id/lid."""
    rule = "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/web/1/80/r1"
    assert rule_listener_arn(rule) == "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/1/80"
