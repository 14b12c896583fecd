"""The canary recipe: weights step by step, pauses behind gates, and the undo of a failed step."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_agent.core.outcome import Trigger
from deploy_agent.models.request import DeployToECSTask
from deploy_agent.strategies import Run, strategy_for
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
    FakeClock,
    forward_action,
    probe_failed,
    traffic_aws,
    traffic_state,
)

CANARY = strategy_for("canary")
CANARY_SERVICE = "web-canary-d-1"
HEALTH = {"url": "http://web.example/health", "unhealthy_threshold": 3}


def start(
    weights: list[int],
    pause: int = 30,
    health_check: dict[str, Any] | None = None,
    timeout: float = 3600,
    poll: float | None = None,
) -> tuple[FakeAws, Run]:
    """Return fakes and a canary run (alarm web-5xx OK) past preflight; ``poll``: its poll interval."""
    aws = traffic_aws()
    if poll is not None:
        aws.poll_seconds = poll
    aws.alarms.set_state("web-5xx", "OK")
    strategy = {"type": "canary", "steps": [{"weight": w, "pause_seconds": pause} for w in weights]}
    state = traffic_state(
        strategy,
        aws.clock,
        health_check=health_check,
        rollback={"enabled": True, "alarm_names": ["web-5xx"]},
        timeout_seconds=timeout,
    )
    run = aws.run(state)
    assert aws.step(CANARY.preflight, run).done
    return aws, run


def until_weight_step(aws: FakeAws, run: Run, index: int) -> None:
    """Advance until the canary's ``index``-th weight step (0-based) has set its weight and pauses."""
    for _ in range(100):
        if run.memory.weight_step == index:
            return
        progress = aws.step(CANARY.deploy, run)
        assert run.state.failure is None, run.state.failure
        aws.let_aws_progress()
        aws.clock.advance(progress.wait_seconds)
    raise AssertionError(f"never reached weight step {index}")


def deploy_to_end(aws: FakeAws, run: Run) -> None:
    for _ in range(200):
        progress = aws.step(CANARY.deploy, run)
        if progress.done:
            return
        aws.let_aws_progress()
        aws.clock.advance(progress.wait_seconds)
    raise AssertionError("the canary never finished")


def rollback_to_end(aws: FakeAws, run: Run) -> None:
    for _ in range(50):
        progress = aws.step(CANARY.rollback, run)
        if progress.done:
            return
        aws.let_aws_progress()
        aws.clock.advance(progress.wait_seconds)
    raise AssertionError("the rollback never finished")


def shifted_weights(aws: FakeAws) -> list[dict[str, int]]:
    return [c.weights for c in aws.elb.changes if c.call == "set_forward_weights"]


class TestWeights:
    @pytest.mark.parametrize(
        ("steps", "canary_weights"),
        [
            ([10, 50, 100], [10, 50, 100]),
            ([20, 40], [20, 40, 100]),
            ([100], [100]),
            ([5, 5, 100], [5, 5, 100]),
        ],
        ids=["ends_at_100", "last_below_100_gets_a_final_100", "one_step", "repeated_weight"],
    )
    def test_listener_weights_follow_the_steps_in_order(
        self, steps: list[int], canary_weights: list[int]
    ) -> None:
        """Each step weights stable 100-w and canary w, in order; a plan short of 100 ends at 100."""
        aws, run = start(steps)
        deploy_to_end(aws, run)
        assert run.state.failure is None
        assert shifted_weights(aws) == [{BLUE: 100 - w, GREEN: w} for w in canary_weights]

    def test_a_last_step_below_100_adds_a_100_step(self) -> None:
        """The recipe of a plan ending at 40 has a weight_100 step before promotion."""
        state = traffic_state({"type": "canary", "steps": [{"weight": 20}, {"weight": 40}]}, FakeClock())
        names = CANARY.recipe(DeployToECSTask.model_validate(state.request))
        assert names == [name for name, _ in CANARY.steps(DeployToECSTask.model_validate(state.request))]
        assert names[3:] == [
            "await_approval",
            "weight_20",
            "weight_40",
            "weight_100",
            "promote",
            "restore_listener",
            "delete_canary",
        ]

    def test_promotion_comes_after_the_last_weight_and_before_the_listener_goes_home(self) -> None:
        """All traffic on the canary, then the original service updated, then restored, then deleted."""
        aws, run = start([10, 50, 100])
        deploy_to_end(aws, run)
        assert [(c.call, c.resource) for c in aws.journal][-4:] == [
            ("set_forward_weights", LISTENER),
            ("update_service", "web"),
            ("restore_default_actions", LISTENER),
            ("delete_service", CANARY_SERVICE),
        ]
        assert aws.elb.listeners[LISTENER]["DefaultActions"] == [forward_action(BLUE)]


class TestPause:
    @pytest.mark.parametrize(
        ("pause", "poll", "waits"),
        [(12, 5.0, [5.0, 5.0, 2.0]), (10, 5.0, [5.0, 5.0]), (3, 5.0, [3.0]), (0, 5.0, [])],
    )
    def test_pause_waits_at_most_the_poll_interval(self, pause: int, poll: float, waits: list[float]) -> None:
        """A step's pause is a series of waits, none longer than the poll interval nor than what is left."""
        aws, run = start([100], pause=pause, poll=poll)
        assert run.poll_seconds == poll
        aws.step(CANARY.deploy, run)  # creates the canary
        aws.let_aws_progress()
        seen: list[float] = []
        while True:
            progress = aws.step(CANARY.deploy, run)
            if run.memory.step != 4 or progress.done:
                break
            seen.append(progress.wait_seconds)
            aws.clock.advance(progress.wait_seconds)
        assert run.state.failure is None
        assert seen == waits


class TestGates:
    def test_an_alarm_in_step_2_fails_with_the_alarm_trigger_naming_the_step(self) -> None:
        """ALARM during step 2 fails the canary with the alarm trigger and a message naming step 2."""
        aws, run = start([10, 50, 100])
        until_weight_step(aws, run, 1)
        aws.alarms.set_state("web-5xx", "ALARM")
        assert aws.step(CANARY.deploy, run).done
        failure = run.state.failure
        assert failure is not None
        assert (failure.type, failure.trigger) == ("alarm_gate_failed", Trigger.ALARM)
        assert "step 2" in failure.message
        assert "web-5xx" in failure.message
        assert run.memory.failed_step == "weight_50"

    @pytest.mark.parametrize(("index", "label"), [(0, "step 1 (10%)"), (1, "step 2 (50%)")])
    def test_a_failing_health_gate_names_the_step(self, index: int, label: str) -> None:
        """Three failed probes in a step's pause fail the canary with the health trigger and the step."""
        aws, run = start([10, 50, 100], health_check=HEALTH)
        until_weight_step(aws, run, index)
        aws.prober.script = [probe_failed(503)]
        for _ in range(3):
            aws.clock.advance(aws.poll_seconds)
            aws.step(CANARY.deploy, run)
        failure = run.state.failure
        assert failure is not None
        assert (failure.type, failure.trigger) == ("health_gate_failed", Trigger.HEALTH_CHECK)
        assert failure.message.startswith(f"{label}: ")

    def test_a_failed_step_restores_the_listener_and_deletes_the_canary(self) -> None:
        """Undo after a failed step: the recorded actions are back and the canary service is gone."""
        aws, run = start([10, 50, 100])
        until_weight_step(aws, run, 1)
        aws.alarms.set_state("web-5xx", "ALARM")
        aws.step(CANARY.deploy, run)
        rollback_to_end(aws, run)
        assert aws.elb.listeners[LISTENER]["DefaultActions"] == [forward_action(BLUE)]
        assert not aws.ecs.is_active(CANARY_SERVICE)
        assert aws.ecs.updates == []

    def test_the_deadline_during_a_pause_fails_with_the_deadline_trigger(self) -> None:
        """Past the deadline in the middle of a pause, the canary stops with a deadline failure."""
        aws, run = start([10, 100], pause=600, timeout=300)
        until_weight_step(aws, run, 0)
        aws.clock.advance(301)
        assert aws.step(CANARY.deploy, run).done
        failure = run.state.failure
        assert failure is not None
        assert (failure.type, failure.trigger) == ("deadline_exceeded", Trigger.DEADLINE)
        assert run.memory.step == 4  # weight_10 (after await_approval), in its pause
        assert shifted_weights(aws) == [{BLUE: 90, GREEN: 10}]


class TestRedelivery:
    def test_a_redelivered_weight_step_keeps_the_original_actions(self) -> None:
        """A weight step repeated after a crash sets the weight again but records nothing new."""
        aws, run = start([10, 50, 100])
        until_weight_step(aws, run, 0)
        aws.clock.advance(30)
        CANARY.deploy(run)  # step 2's weight set; the pipeline's save never happened
        again = aws.redeliver()
        aws.step(CANARY.deploy, again)
        assert shifted_weights(aws)[-1] == {BLUE: 50, GREEN: 50}
        assert again.memory.original_actions == [forward_action(BLUE)]
        assert aws.ecs.created == [CANARY_SERVICE]
