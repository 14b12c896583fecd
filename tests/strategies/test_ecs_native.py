"""ECS's native strategies driven through PAUSE hooks, against the shipped fakes (no AWS, no clock)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from deploy_agent.core.errors import RequestRejected
from deploy_agent.core.orchestration import decide_rollback_info
from deploy_agent.core.outcome import Trigger
from deploy_agent.core.state import PipelineState
from deploy_agent.models import parse_request
from deploy_agent.strategies import Run, strategy_for
from deploy_agent.strategies.ecs_native import EcsLinearStrategy
from deploy_agent.testing import BLUE_TG_ARN as BLUE
from deploy_agent.testing import GREEN_TG_ARN as GREEN
from deploy_agent.testing import IMAGE_URI, FakeAws, probe_failed, traffic_aws, traffic_state

LISTENER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/80"
PROD_RULE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/80/r1"
ROLE = "arn:aws:iam::123456789012:role/ecs-infrastructure"
HEALTH = {"url": "http://web.example/health", "unhealthy_threshold": 1}


def native_aws(advanced: dict[str, Any] | None = None) -> FakeAws:
    """Return the fakes of service ``web`` whose load balancer ECS's blue/green can use."""
    aws = traffic_aws()
    config = (
        advanced
        if advanced is not None
        else {
            "alternateTargetGroupArn": GREEN,
            "productionListenerRule": PROD_RULE,
            "roleArn": ROLE,
        }
    )
    aws.ecs.load_balancers[0]["advancedConfiguration"] = config
    forward = {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": BLUE, "Weight": 100}, {"TargetGroupArn": GREEN, "Weight": 0}]
        },
    }
    aws.elb.add_rule(LISTENER, PROD_RULE, forward)
    return aws


def native_state(aws: FakeAws, strategy: dict[str, Any], **kwargs: Any) -> PipelineState:
    state = traffic_state({"load_balancer": None, **strategy}, aws.clock, **kwargs)
    state.request["strategy"] = strategy
    return state


def deploy(aws: FakeAws, run: Run[Any]) -> Any:
    return aws.step(strategy_for(run.state.strategy).deploy, run)


def through_hooks(aws: FakeAws, run: Run[Any], stages: list[tuple[str, float]]) -> None:
    """Hold ECS's deployment at each (stage, weight) in turn, letting the worker answer each."""
    for stage, weight in stages:
        aws.ecs.pause_at(stage, weight, hook_id="h1")
        answered = len(aws.ecs.answers)
        for _ in range(5):
            deploy(aws, run)
            if len(aws.ecs.answers) > answered or run.state.failure is not None:
                break


LINEAR_HOOKS = [
    ("POST_TEST_TRAFFIC_SHIFT", 0.0),
    ("POST_TEST_TRAFFIC_SHIFT", 0.0),  # PRE_PRODUCTION_TRAFFIC_SHIFT never shows as a stage
    ("PRODUCTION_TRAFFIC_SHIFT", 50.0),
    ("POST_PRODUCTION_TRAFFIC_SHIFT", 100.0),
]


def failed_at_step_one(aws: FakeAws) -> Run[Any]:
    """Return an ECS linear run (50% steps) whose health gate failed at step 1, two hooks continued."""
    run = aws.run(native_state(aws, {"type": "ecs_linear", "step_percent": 50.0}, health_check=HEALTH))
    deploy(aws, run)
    through_hooks(aws, run, LINEAR_HOOKS[:2])
    aws.prober.script = [probe_failed(500)]
    through_hooks(aws, run, LINEAR_HOOKS[2:3])
    return run


class TestMessage:
    def _message(self, **strategy: object) -> dict[str, object]:
        return {
            "cluster_name": "c",
            "service_name": "web",
            "image": {"uri": IMAGE_URI},
            "strategy": strategy,
        }

    def test_ecs_names_are_accepted_in_camel_case(self) -> None:
        """stepPercent and stepBakeTimeInMinutes are ECS's own names, accepted as they are."""
        message = parse_request(self._message(type="ecs_linear", stepPercent=25.0, stepBakeTimeInMinutes=1))
        assert isinstance(message.strategy, EcsLinearStrategy)
        assert (message.strategy.step_percent, message.strategy.step_bake_time_in_minutes) == (25.0, 1)

    @pytest.mark.parametrize(
        ("strategy", "field"),
        [
            pytest.param(
                {"type": "ecs_linear", "step_percent": 2.0}, "strategy.step_percent", id="step below 3"
            ),
            pytest.param(
                {"type": "ecs_linear", "step_percent": 12.34}, "strategy.step_percent", id="not tenths"
            ),
            pytest.param(
                {"type": "ecs_canary", "canary_percent": 0.0}, "strategy.canary_percent", id="no canary"
            ),
            pytest.param(
                {"type": "ecs_blue_green", "bake_time_in_minutes": 1441},
                "strategy.bake_time_in_minutes",
                id="bake",
            ),
            pytest.param(
                {"type": "ecs_blue_green", "hook_timeout_minutes": 0},
                "strategy.hook_timeout_minutes",
                id="hook",
            ),
        ],
    )
    def test_values_ecs_refuses_are_rejected_naming_the_field(
        self, strategy: dict[str, Any], field: str
    ) -> None:
        """ECS's own ranges are checked before anything is touched, the error naming the field."""
        with pytest.raises(RequestRejected) as caught:
            parse_request(self._message(**strategy))
        assert [e["field"] for e in caught.value.errors or []] == [field]


class TestPreflight:
    def test_a_service_without_advanced_configuration_is_refused(self) -> None:
        """Without ECS's alternate target group and rules there is no native deployment to drive."""
        aws = traffic_aws()
        run = aws.run(native_state(aws, {"type": "ecs_blue_green"}))
        strategy_for("ecs_blue_green").preflight(run)
        assert run.state.failure is not None
        assert run.state.failure.type == "preflight_failed"
        assert "advancedConfiguration" in run.state.failure.message
        assert aws.journal == []

    @pytest.mark.parametrize(
        ("advanced", "problem"),
        [
            pytest.param(
                {"productionListenerRule": PROD_RULE, "roleArn": ROLE}, "alternateTargetGroupArn is missing"
            ),
            pytest.param(
                {"alternateTargetGroupArn": BLUE, "productionListenerRule": PROD_RULE, "roleArn": ROLE},
                "is the service's own target group",
            ),
            pytest.param(
                {"alternateTargetGroupArn": GREEN, "productionListenerRule": PROD_RULE}, "roleArn is missing"
            ),
            pytest.param(
                {
                    "alternateTargetGroupArn": GREEN,
                    "productionListenerRule": PROD_RULE + "x",
                    "roleArn": ROLE,
                },
                "does not exist",
            ),
        ],
    )
    def test_what_ecs_would_refuse_is_refused_first(self, advanced: dict[str, Any], problem: str) -> None:
        """Each broken piece of the advanced configuration is named; nothing is changed on AWS."""
        aws = native_aws(advanced)
        run = aws.run(native_state(aws, {"type": "ecs_blue_green"}))
        strategy_for("ecs_blue_green").preflight(run)
        assert run.state.failure is not None
        assert problem in run.state.failure.message
        assert aws.journal == []

    def test_a_good_setup_passes(self) -> None:
        """Alternate group, a rule forwarding to both groups and a role: ready for ECS."""
        aws = native_aws()
        run = aws.run(native_state(aws, {"type": "ecs_blue_green"}))
        assert strategy_for("ecs_blue_green").preflight(run).done
        assert run.state.failure is None


class TestDeploy:
    def test_update_service_asks_ecs_for_linear_with_pause_hooks_that_roll_back_on_timeout(self) -> None:
        """The strategy, step size, bake and one PAUSE hook on the three gated stages are sent."""
        aws = native_aws()
        run = aws.run(
            native_state(aws, {"type": "ecs_linear", "step_percent": 50.0, "step_bake_time_in_minutes": 1})
        )
        deploy(aws, run)
        (config,) = aws.ecs.native_configs
        assert config["strategy"] == "LINEAR"
        assert config["linearConfiguration"] == {"stepPercent": 50.0, "stepBakeTimeInMinutes": 1}
        (hook,) = config["lifecycleHooks"]
        assert hook["targetType"] == "PAUSE"
        assert hook["lifecycleStages"] == [
            "POST_TEST_TRAFFIC_SHIFT",
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            "POST_PRODUCTION_TRAFFIC_SHIFT",
        ]
        assert hook["timeoutConfiguration"]["action"] == "ROLLBACK"
        assert run.state.service_deployment is not None

    def test_every_hook_is_answered_once_and_success_is_ecs_successful(self) -> None:
        """Each firing gets one CONTINUE; SUCCESSFUL ends the deploy stage with the points recorded."""
        aws = native_aws()
        run = aws.run(native_state(aws, {"type": "ecs_linear", "step_percent": 50.0}))
        deploy(aws, run)
        through_hooks(aws, run, LINEAR_HOOKS)
        assert [a[2] for a in aws.ecs.answers] == ["CONTINUE"] * 4
        aws.ecs.finish("SUCCESSFUL")
        assert deploy(aws, run).done
        assert run.state.failure is None
        native = run.state.service_deployment
        assert native is not None
        assert native.status == "SUCCESSFUL"
        (released,) = aws.ecs.configuration_updates  # our PAUSE hooks would hold anyone's next deployment
        assert released["strategy"] == "LINEAR"
        assert [h for h in released["lifecycleHooks"] if h["targetType"] == "PAUSE"] == []
        assert [h.point for h in native.hooks] == [
            "test traffic",
            "before production traffic",
            "step 1 (50%)",
            "step 2 (100%)",
        ]
        assert [h.traffic_percent for h in native.hooks] == [0.0, 0.0, 50.0, 100.0]

    def test_a_failing_gate_at_a_step_stops_ecs_with_rollback_naming_the_step(self) -> None:
        """The health gate fails after step 1: the hook is not continued, StopServiceDeployment ROLLBACK."""
        aws = native_aws()
        run = failed_at_step_one(aws)
        failure = run.state.failure
        assert failure is not None
        assert failure.trigger is Trigger.HEALTH_CHECK
        assert "step 1 (50%)" in failure.message
        assert [a[2] for a in aws.ecs.answers] == ["CONTINUE", "CONTINUE"]
        rollback = strategy_for("ecs_linear").rollback
        aws.step(rollback, run)
        assert aws.ecs.stops == [(run.state.service_deployment.arn, "ROLLBACK")]  # type: ignore[union-attr]
        aws.step(rollback, aws.redeliver())  # a redelivered rollback stage does not stop twice
        assert len(aws.ecs.stops) == 1
        aws.ecs.finish("ROLLBACK_SUCCESSFUL", "stopped by deploy-agent")
        final = aws.redeliver()
        assert aws.step(rollback, final).done
        assert final.state.rollback_done
        assert len(aws.ecs.configuration_updates) == 1  # the hooks are off the service after a rollback too

    def test_ecs_rolling_back_before_our_stop_is_still_reported_as_a_rollback(self) -> None:
        """Our gate failed, then ECS's hook timed out before our stop: rolled back, nothing stopped."""
        aws = native_aws()
        run = failed_at_step_one(aws)
        assert run.state.failure is not None
        hooks = [{"hookId": "h1", "status": "TIMED_OUT"}]
        aws.ecs.finish("ROLLBACK_SUCCESSFUL", "hook timed out", lifecycleHookDetails=hooks)
        final = aws.redeliver()
        assert aws.step(strategy_for("ecs_linear").rollback, final).done
        assert aws.ecs.stops == []  # ECS had rolled back already
        assert final.state.rollback_done
        assert final.state.ecs_rolled_back
        info = decide_rollback_info(final.state, final.state.failure.as_failure(), None)  # type: ignore[union-attr]
        assert info is not None, "a service ECS rolled back is reported with its rollback"
        assert info["trigger"] == "deadline"  # ECS's cause undid the release: it is the one reported
        assert "hook h1 timed out" in info["reason"]
        assert "our own check had failed too" in info["reason"]  # with ours beside it
        assert any(kind == "ecs_rolled_back" and "timed out" in f["reason"] for kind, f in aws.events)

    def test_ecs_rolling_back_by_itself_is_rolled_back_with_its_cause(self) -> None:
        """The circuit breaker's rollback is reported with its counts, never as success."""
        aws = native_aws()
        run = aws.run(native_state(aws, {"type": "ecs_blue_green"}))
        deploy(aws, run)
        aws.ecs.finish(
            "ROLLBACK_SUCCESSFUL",
            "tasks failed to start",
            deploymentCircuitBreaker={"status": "TRIGGERED", "failureCount": 3, "threshold": 3},
        )
        deploy(aws, run)
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.CIRCUIT_BREAKER
        assert strategy_for("ecs_blue_green").rollback(run).done
        assert run.state.rollback_done
        assert aws.ecs.stops == []  # ECS rolled back already: nothing to stop

    def test_a_redelivered_answer_does_not_continue_twice(self) -> None:
        """A worker that died after ContinueServiceDeployment finds the firing answered, not awaiting."""
        aws = native_aws()
        run = aws.run(native_state(aws, {"type": "ecs_blue_green"}))
        deploy(aws, run)
        aws.ecs.pause_at("POST_TEST_TRAFFIC_SHIFT", 0.0)
        aws.crash_at_save = len(aws.saved) + 1  # dies right after saving "answering", before the call
        with pytest.raises(BaseException, match="worker died"):
            deploy(aws, run)
        assert aws.ecs.answers == []
        again = aws.redeliver()
        deploy(aws, again)
        deploy(aws, again)
        assert len(aws.ecs.answers) == 1
        native = again.state.service_deployment
        assert native is not None
        assert [h.point for h in native.hooks] == ["test traffic"]  # recorded once, before the call

    def test_an_answer_whose_run_died_before_noting_it_still_counts_for_the_next_point(self) -> None:
        """CONTINUE sent, the worker killed before its save: the next firing is step 1, not a repeat."""
        aws = native_aws()
        run = aws.run(native_state(aws, {"type": "ecs_linear", "step_percent": 50.0}))
        deploy(aws, run)
        through_hooks(aws, run, LINEAR_HOOKS[:1])
        aws.ecs.pause_at(*LINEAR_HOOKS[1], hook_id="h1")
        deploy(aws, run)  # judges, records, saves "answering", continues ...
        assert len(aws.ecs.answers) == 2
        aws.saved.pop()  # ... and dies before the step's own save: a redelivery sees "answering"
        aws.ecs.pause_at(*LINEAR_HOOKS[2], hook_id="h1")
        again = aws.redeliver()
        for _ in range(3):
            deploy(aws, again)
        native = again.state.service_deployment
        assert native is not None
        points = [h.point for h in native.hooks]
        assert points == ["test traffic", "before production traffic", "step 1 (50%)"]
        assert len(aws.ecs.answers) == 3  # each firing answered once

    def test_a_lost_update_reply_is_found_by_listing(self) -> None:
        """Without currentServiceDeployment in the reply, the deployment of our revision is listed."""
        aws = native_aws()
        aws.ecs.names_current_deployment = False
        run = aws.run(native_state(aws, {"type": "ecs_blue_green"}))
        deploy(aws, run)
        assert run.state.service_deployment is None
        deploy(aws, run)
        assert run.state.service_deployment is not None
        assert run.state.service_deployment.arn == aws.ecs.native["serviceDeploymentArn"]

    def test_the_deadline_fails_the_deployment_at_a_look(self) -> None:
        """Past the message's deadline the look fails it (the rollback stage then stops ECS)."""
        aws = native_aws()
        run = aws.run(native_state(aws, {"type": "ecs_blue_green"}, timeout_seconds=60))
        deploy(aws, run)
        aws.clock.advance(timedelta(seconds=61).total_seconds())
        deploy(aws, run)
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.DEADLINE


class TestGatesAtHooks:
    def test_a_prometheus_gate_failing_after_step_1_stops_ecs_naming_gate_and_step(self) -> None:
        """The analysis measured at the hook after step 1 fails: no CONTINUE, trigger analysis."""
        from deploy_agent.testing.prometheus import sample

        aws = native_aws()
        state = native_state(aws, {"type": "ecs_linear", "step_percent": 50.0})
        state.request["analysis"] = [
            {
                "name": "error-rate",
                "url": "http://prometheus.example:9090",
                "query": "errors",
                "success_condition": "result < 0.05",
                "interval_seconds": 1,
                "count": 1,
            }
        ]
        run = aws.run(state)
        deploy(aws, run)
        aws.prometheus.script = [sample(0.0)]
        through_hooks(aws, run, LINEAR_HOOKS[:2])
        aws.prometheus.script = [sample(0.4)]
        through_hooks(aws, run, LINEAR_HOOKS[2:3])
        failure = run.state.failure
        assert failure is not None
        assert failure.trigger is Trigger.ANALYSIS
        assert "step 1 (50%)" in failure.message
        assert "error-rate" in failure.message
        assert len(aws.ecs.answers) == 2
        native = run.state.service_deployment
        assert native is not None
        assert (native.hooks[-1].action, native.hooks[-1].point) == ("ROLLBACK", "step 1 (50%)")

    def test_dropped_requests_during_a_step_fail_it(self) -> None:
        """The production URL is watched from one hook to the next; failures in between fail the step."""
        from deploy_agent.core.traffic import ZeroDowntimeReport

        aws = native_aws()
        strategy = {"type": "ecs_linear", "step_percent": 50.0, "production_url": "http://web.example/"}
        run = aws.run(native_state(aws, strategy))
        aws.traffic.reports = [ZeroDowntimeReport(40, 3, 900.0)]
        deploy(aws, run)
        through_hooks(aws, run, LINEAR_HOOKS[:3])
        failure = run.state.failure
        assert failure is not None
        assert failure.type == "zero_downtime_gate_failed"
        assert failure.message.startswith("step 1 (50%): 3 of 40 requests")
        assert run.state.zero_downtime == {"requests": 40, "failures": 3, "longest_gap_ms": 900.0}

    def test_a_clean_watch_lets_every_step_pass_and_is_summed(self) -> None:
        """Each step's report is added up; no failures, no rollback."""
        aws = native_aws()
        strategy = {"type": "ecs_linear", "step_percent": 50.0, "production_url": "http://web.example/"}
        run = aws.run(native_state(aws, strategy))
        deploy(aws, run)
        through_hooks(aws, run, LINEAR_HOOKS)
        assert run.state.failure is None
        assert run.state.zero_downtime == {"requests": 20, "failures": 0, "longest_gap_ms": 0.0}
        assert [c.url for c in aws.traffic.changes] == ["http://web.example/"] * 2
