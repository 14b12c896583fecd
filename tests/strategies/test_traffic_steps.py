"""The steps blue-green and canary share: preflight, listener shifts and restores, the temporary service."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from deploy_agent.core.outcome import Trigger
from deploy_agent.core.traffic import ZeroDowntimeReport, listener_forward_weights
from deploy_agent.strategies import Run, strategy_for
from deploy_agent.strategies.steps.listener import restore_listener, shift_traffic
from deploy_agent.strategies.steps.temp_service import (
    check_traffic_setup,
    create_temp_service,
    verify_temp_service,
    wait_temp_service,
)
from deploy_agent.testing import (
    BLUE_TG_ARN as BLUE,
)
from deploy_agent.testing import (
    GREEN_TG_ARN as GREEN,
)
from deploy_agent.testing import (
    LISTENER_ARN as LISTENER,
)
from deploy_agent.testing import (
    FakeAws,
    forward_action,
    traffic_aws,
    traffic_state,
)

ORIGINAL = [forward_action(BLUE)]


def make(alarms: list[str] | None = None, production_url: str | None = None) -> tuple[FakeAws, Run]:
    """Return fakes and a blue-green run before preflight; the alarm web-5xx exists (OK)."""
    aws = traffic_aws()
    aws.alarms.set_state("web-5xx", "OK")
    strategy: dict[str, object] = {"type": "blue_green", "bake_seconds": 600}
    state = traffic_state(
        strategy, aws.clock, rollback={"enabled": True, "alarm_names": alarms or []}, timeout_seconds=300
    )
    if production_url:
        state.request["strategy"]["load_balancer"]["production_url"] = production_url
    return aws, aws.run(state)


def _drop_listener(aws: FakeAws, run: Run) -> Run:
    del aws.elb.listeners[LISTENER]
    return run


def _drop_green(aws: FakeAws, run: Run) -> Run:
    del aws.elb.target_groups[GREEN]
    return run


def _name_missing_alarm(aws: FakeAws, run: Run) -> Run:
    """The message names an alarm that does not exist (the request is the model: parse it again)."""
    run.state.request["rollback"]["alarm_names"] = ["web-5xx", "web-latency"]
    return aws.run(run.state)


def _listener_on_green(aws: FakeAws, run: Run) -> Run:
    aws.elb.listeners[LISTENER]["DefaultActions"] = [forward_action(GREEN)]
    return run


class TestPreflight:
    @pytest.mark.parametrize(
        ("breakage", "field", "problem"),
        [
            (_drop_listener, "strategy.load_balancer.listener_arn", "listener does not exist"),
            (_drop_green, "strategy.load_balancer.green_target_group_arn", "target group does not exist"),
            (_name_missing_alarm, "rollback.alarm_names", "alarm 'web-latency' does not exist"),
            (
                _listener_on_green,
                "strategy.load_balancer.listener_arn",
                "listener already sends traffic to the green target group",
            ),
        ],
        ids=["missing_listener", "missing_green_group", "missing_alarm", "leftover_green_traffic"],
    )
    def test_an_unusable_setup_is_rejected_with_the_field_and_nothing_touched(
        self, breakage: Callable[[FakeAws, Run], Run], field: str, problem: str
    ) -> None:
        """Each problem becomes one rejection naming its message field; no AWS resource is changed."""
        aws, run = make(alarms=["web-5xx"])
        run = breakage(aws, run)
        assert check_traffic_setup(run).done
        assert run.state.rejections == [{"field": field, "problem": problem}]
        assert run.state.failure is not None
        assert (run.state.failure.type, run.state.failure.trigger) == ("preflight_failed", Trigger.ERROR)
        assert aws.journal == []
        assert run.memory.original_actions is None

    def test_a_usable_setup_records_the_listener_actions_and_desired_count(self) -> None:
        """Preflight of a good setup records the original DefaultActions and the desired count."""
        aws, run = make(alarms=["web-5xx"])
        assert check_traffic_setup(run).done
        assert run.state.failure is None
        assert run.state.rejections == []
        assert run.memory.original_actions == ORIGINAL
        assert run.memory.desired == 2
        assert aws.journal == []

    def test_a_failed_preflight_needs_no_undo(self) -> None:
        """After a rejection the rollback has nothing to do and calls nothing."""
        aws, run = make()
        _drop_listener(aws, run)
        check_traffic_setup(run)
        assert strategy_for("blue_green").rollback(run).skipped
        assert aws.journal == []


class TestListener:
    def test_the_recorded_actions_stay_the_pre_deployment_ones_when_shifting_twice(self) -> None:
        """shift_traffic records the listener's actions once; a repeated step does not modify it again."""
        aws, run = make()
        shift_traffic(run, {BLUE: 90, GREEN: 10}, "step 1")
        shift_traffic(run, {BLUE: 90, GREEN: 10}, "step 1")
        shift_traffic(run, {BLUE: 50, GREEN: 50}, "step 2")
        assert run.memory.original_actions == ORIGINAL
        assert [c.weights for c in aws.elb.changes] == [{BLUE: 90, GREEN: 10}, {BLUE: 50, GREEN: 50}]

    def test_restore_puts_the_exact_actions_back_once(self) -> None:
        """restore_listener writes the recorded actions back, and a second call does nothing."""
        aws, run = make()
        check_traffic_setup(run)
        shift_traffic(run, {BLUE: 0, GREEN: 100}, "to green")
        restore_listener(run)
        restore_listener(run)
        assert [c.call for c in aws.elb.changes] == ["set_forward_weights", "restore_default_actions"]
        assert aws.elb.listeners[LISTENER]["DefaultActions"] == ORIGINAL

    def test_restore_without_a_change_calls_nothing(self) -> None:
        """A listener we never changed is not written."""
        aws, run = make()
        check_traffic_setup(run)
        assert restore_listener(run).done
        assert aws.elb.changes == []

    def test_every_listener_change_is_probed_and_summed(self) -> None:
        """With a production URL, each change is watched once (begun, ended) and the reports add up.

        A watched change waits the settle time; the next call of the step reads the report.
        """
        aws, run = make(production_url="http://web.example/")
        aws.traffic.reports = [ZeroDowntimeReport(40, 0, 12.0), ZeroDowntimeReport(30, 2, 80.0)]
        check_traffic_setup(run)
        for change in (
            lambda: shift_traffic(run, {BLUE: 0, GREEN: 100}, "to green"),
            lambda: restore_listener(run),
        ):
            waiting = change()
            assert (waiting.done, waiting.wait_seconds) == (False, aws.settle_seconds)
            aws.clock.advance(waiting.wait_seconds)
            assert change().done
        assert [(c.key, c.url, c.ended_after) for c in aws.traffic.changes] == [
            ("d-1:to green", "http://web.example/", aws.settle_seconds),
            ("d-1:restore", "http://web.example/", aws.settle_seconds),
        ]
        assert [c.call for c in aws.elb.changes] == ["set_forward_weights", "restore_default_actions"]
        assert run.state.zero_downtime == {"requests": 70, "failures": 2, "longest_gap_ms": 80.0}


class TestTemporaryService:
    @pytest.mark.parametrize(
        ("failed_tasks", "circuit_breaker", "fails"),
        [(2, False, False), (50, False, False), (0, True, True)],
        ids=[
            "a few failures wait",
            "failedTasks alone is no verdict (ECS resets it)",
            "ECS's circuit breaker failed it",
        ],
    )
    def test_a_temporary_service_fails_when_ecs_marks_it_failed(
        self, failed_tasks: int, circuit_breaker: bool, fails: bool
    ) -> None:
        """Green fails on its deployment's FAILED rollout (our breaker), never on a failedTasks count."""
        aws, run = make()
        check_traffic_setup(run)
        create_temp_service("green")(run)
        aws.ecs.fail_service("web-green-d-1", failed_tasks, circuit_breaker=circuit_breaker)
        progress = wait_temp_service(run)
        assert (run.state.failure is not None) is fails
        assert progress.done is fails

    @pytest.mark.parametrize(
        ("seconds_missing", "fails"),
        [(5.0, False), (31.0, True)],
        ids=["a short MISSING is waited out", "MISSING past 30 s fails the step"],
    )
    def test_a_new_service_missing_from_describe_is_tolerated_for_a_while(
        self, seconds_missing: float, fails: bool
    ) -> None:
        """A MISSING answer right after CreateService (eventual consistency) is waited out, then fails."""
        aws, run = make()
        check_traffic_setup(run)
        create_temp_service("green")(run)
        aws.ecs.missing.add("web-green-d-1")
        aws.clock.advance(seconds_missing)
        progress = wait_temp_service(run)
        assert (run.state.failure is not None) is fails
        assert progress.done is fails
        if fails:
            assert run.state.failure is not None
            assert "still does not list it" in run.state.failure.message

    def test_only_the_blue_entries_move_to_green(self) -> None:
        """CreateService gets the blue target group's entries (re-pointed to green), not another LB's."""
        aws, run = make()
        other = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/internal/9"
        aws.ecs.load_balancers.append(
            {"targetGroupArn": other, "containerName": "web", "containerPort": 9000}
        )
        check_traffic_setup(run)
        create_temp_service("green")(run)
        template = aws.ecs.temp_services["web-green-d-1"].template
        assert [b["targetGroupArn"] for b in template["loadBalancers"]] == [BLUE]

    @pytest.mark.parametrize(
        ("states", "outcome"),
        [
            (["healthy", "healthy"], "done"),
            (["healthy", "initial"], "wait"),
            (["unhealthy", "unhealthy"], "failed"),
            ([], "wait"),
        ],
    )
    def test_green_targets_must_be_healthy_before_traffic(self, states: list[str], outcome: str) -> None:
        """verify_temp_service waits for desired healthy targets and fails when they are all unhealthy."""
        aws, run = make()
        check_traffic_setup(run)
        aws.elb.set_target_health(GREEN, *states)
        progress = verify_temp_service(run)
        seen = "failed" if run.state.failure else ("done" if progress.done else "wait")
        assert seen == outcome

    def test_create_is_recorded_before_the_call(self) -> None:
        """The temporary service's name is persisted before CreateService is sent."""
        aws, run = make()
        check_traffic_setup(run)
        create_temp_service("green")(run)
        assert '"temp_service":"web-green-d-1"' in aws.saved[0]
        assert aws.ecs.created == ["web-green-d-1"]


def test_the_deadline_during_the_bake_fails_with_the_deadline_trigger() -> None:
    """Past the deadline while blue-green bakes, the recipe stops with a deadline failure."""
    aws, run = make()
    bg = strategy_for("blue_green")
    check_traffic_setup(run)
    aws.step(bg.deploy, run)
    aws.let_aws_progress()
    assert not aws.step(bg.deploy, run).done  # shifted to green, baking
    aws.clock.advance(301)
    assert aws.step(bg.deploy, run).done
    assert run.state.failure is not None
    assert (run.state.failure.type, run.state.failure.trigger) == ("deadline_exceeded", Trigger.DEADLINE)
    assert aws.elb.forward_weights(LISTENER) == {BLUE: 0, GREEN: 100}


class TestListenerRules:
    RULE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/2/api"

    def test_a_rule_forwarding_to_blue_moves_with_the_default_and_comes_back_exactly(self) -> None:
        """Shifted with the default action's weights, recorded before the change, restored exactly."""
        aws, run = make()
        aws.elb.add_rule(LISTENER, self.RULE, forward_action(BLUE))
        check_traffic_setup(run)
        assert run.memory.original_rules == {self.RULE: [forward_action(BLUE)]}
        shift_traffic(run, {BLUE: 0, GREEN: 100}, "to green")
        assert '"original_rules"' in aws.saved[0]  # durable before the first change
        assert listener_forward_weights({"DefaultActions": aws.elb.rule_actions(self.RULE)}) == {
            BLUE: 0,
            GREEN: 100,
        }
        restore_listener(run)
        assert aws.elb.rule_actions(self.RULE) == [forward_action(BLUE)]
        assert aws.elb.listeners[LISTENER]["DefaultActions"] == ORIGINAL

    def test_a_rule_that_splits_blue_with_another_group_is_refused_before_anything(self) -> None:
        """The preflight names the rule and why; nothing is changed."""
        aws, run = make()
        other = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/3"
        split = {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": BLUE, "Weight": 1},
                    {"TargetGroupArn": other, "Weight": 1},
                ]
            },
        }
        aws.elb.add_rule(LISTENER, self.RULE, split)
        check_traffic_setup(run)
        assert run.state.failure is not None
        assert run.state.failure.type == "preflight_failed"
        assert run.state.rejections[0]["field"] == "strategy.load_balancer.listener_arn"
        assert self.RULE in run.state.rejections[0]["problem"]
        assert aws.elb.journal == []
