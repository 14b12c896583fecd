"""The blue-green recipe and its undo, against the fakes that ship with the package."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_agent.core.outcome import Trigger, decide_outcome
from deploy_agent.core.state import PipelineState
from deploy_agent.strategies import Run, strategy_for
from deploy_agent.strategies.blue_green import STEPS
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
    NEW_TASK_DEFINITION as NEW,
)
from deploy_agent.testing import (
    OLD_TASK_DEFINITION as OLD,
)
from deploy_agent.testing import (
    Crash,
    FakeAws,
    forward_action,
    traffic_aws,
    traffic_state,
)

BG = strategy_for("blue_green")
GREEN_SERVICE = "web-green-d-1"
STEP_NAMES = [name for name, _ in STEPS]


def start(rollback: dict[str, Any] | None = None) -> tuple[FakeAws, Run]:
    """Return fakes and a run of a blue-green deployment (bake 60 s, alarm web-5xx OK) past preflight."""
    aws = traffic_aws()
    aws.alarms.set_state("web-5xx", "OK")
    state = traffic_state(
        {"type": "blue_green", "bake_seconds": 60},
        aws.clock,
        rollback=rollback or {"enabled": True, "alarm_names": ["web-5xx"]},
    )
    run = aws.run(state)
    assert aws.step(BG.preflight, run).done
    assert run.state.failure is None
    return aws, run


def deploy_until(aws: FakeAws, run: Run, step: str) -> None:
    """Advance the deployment, letting AWS progress between calls, until the recipe waits in ``step``."""
    for _ in range(50):
        if STEP_NAMES[run.memory.step] == step:
            return
        progress = aws.step(BG.deploy, run)
        assert run.state.failure is None, run.state.failure
        aws.let_aws_progress()
        aws.clock.advance(progress.wait_seconds)
    raise AssertionError(f"the recipe never reached {step}")


def deploy_to_end(aws: FakeAws, run: Run) -> None:
    for _ in range(50):
        progress = aws.step(BG.deploy, run)
        if progress.done:
            return
        aws.let_aws_progress()
        aws.clock.advance(progress.wait_seconds)
    raise AssertionError("the deployment never finished")


def rollback_to_end(aws: FakeAws, run: Run) -> None:
    for _ in range(50):
        progress = aws.step(BG.rollback, run)
        if progress.done:
            return
        aws.let_aws_progress()
        aws.clock.advance(progress.wait_seconds)
    raise AssertionError("the rollback never finished")


def calls(aws: FakeAws) -> list[tuple[str, str]]:
    return [(c.call, c.resource) for c in aws.journal]


ORIGINAL = [forward_action(BLUE)]


class TestHappyPath:
    def test_aws_sees_create_shift_update_restore_delete_in_that_order(self) -> None:
        """Green is created, takes all traffic, blue is updated, the listener comes home, green goes."""
        aws, run = start()
        deploy_to_end(aws, run)
        assert run.state.failure is None
        assert calls(aws) == [
            ("create_service", GREEN_SERVICE),
            ("set_forward_weights", LISTENER),
            ("update_service", "web"),
            ("restore_default_actions", LISTENER),
            ("delete_service", GREEN_SERVICE),
        ]
        assert aws.journal[1].detail == {BLUE: 0, GREEN: 100}
        assert aws.journal[2].detail == NEW
        assert aws.elb.listeners[LISTENER]["DefaultActions"] == ORIGINAL

    def test_green_is_never_deleted_while_the_listener_forwards_to_it(self) -> None:
        """At the DeleteService of green, the listener's weight on green is 0."""
        aws, run = start()
        deploy_to_end(aws, run)
        weights: dict[str, int] = {BLUE: 1}
        for call in aws.journal:
            if call.resource == LISTENER:
                weights = call.detail
            if call.call == "delete_service":
                assert weights.get(GREEN, 0) == 0, weights

    def test_waits_for_green_before_moving_traffic(self) -> None:
        """While green's deployment is in progress the recipe polls and the listener is untouched."""
        aws, run = start()
        for _ in range(3):
            progress = aws.step(BG.deploy, run)
            assert (progress.done, progress.wait_seconds) == (False, aws.poll_seconds)
        assert calls(aws) == [("create_service", GREEN_SERVICE)]
        assert aws.ecs.created == [GREEN_SERVICE]

    def test_green_is_started_on_the_new_revision_in_the_green_group(self) -> None:
        """The created service runs the new task definition with the blue service's desired count."""
        aws, run = start()
        aws.step(BG.deploy, run)
        green = aws.ecs.temp_services[GREEN_SERVICE]
        assert (green.task_definition, green.target_group_arn, green.desired_count) == (NEW, GREEN, 2)


class TestUndo:
    def test_failure_while_green_starts_deletes_only_green(self) -> None:
        """Green's tasks keep failing: green is deleted; listener and blue are never touched."""
        aws, run = start()
        aws.step(BG.deploy, run)
        aws.ecs.fail_service(GREEN_SERVICE, failed_tasks=3, circuit_breaker=True)
        assert aws.step(BG.deploy, run).done
        assert run.state.failure is not None
        assert (run.state.failure.type, run.memory.failed_step) == (
            "rollout_failed",
            "wait_green",
        )
        rollback_to_end(aws, run)
        assert calls(aws) == [("create_service", GREEN_SERVICE), ("delete_service", GREEN_SERVICE)]
        assert aws.elb.changes == []
        assert aws.ecs.updates == []
        assert run.state.rollback_done

    def test_failure_during_bake_restores_the_listener_exactly(self) -> None:
        """An alarm during bake: listener restored to the recorded actions, green deleted, blue untouched."""
        aws, run = start()
        deploy_until(aws, run, "bake")
        aws.alarms.set_state("web-5xx", "ALARM")
        assert aws.step(BG.deploy, run).done
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.ALARM
        assert run.state.failure.message == "bake: alarm in ALARM state: web-5xx"
        rollback_to_end(aws, run)
        assert calls(aws)[-2:] == [("restore_default_actions", LISTENER), ("delete_service", GREEN_SERVICE)]
        assert aws.elb.listeners[LISTENER]["DefaultActions"] == ORIGINAL
        assert aws.ecs.updates == []

    def test_failure_after_blue_was_updated_reverts_blue(self) -> None:
        """Blue's rollout fails: listener restored, blue back on the previous revision, then green deleted."""
        aws, run = start()
        deploy_until(aws, run, "update_blue")
        aws.ecs.set_rollout("FAILED", "ECS deployment circuit breaker: tasks failed to start.")
        assert aws.step(BG.deploy, run).done
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.CIRCUIT_BREAKER
        rollback_to_end(aws, run)
        assert calls(aws)[2:] == [
            ("update_service", "web"),
            ("restore_default_actions", LISTENER),
            ("update_service", "web"),
            ("delete_service", GREEN_SERVICE),
        ]
        assert [u.task_definition_arn for u in aws.ecs.updates] == [NEW, OLD]
        assert aws.ecs.task_definition == OLD
        assert aws.elb.listeners[LISTENER]["DefaultActions"] == ORIGINAL
        assert run.state.rollback_done
        assert not run.state.rollback_failed

    @pytest.mark.parametrize(
        ("failing_step", "expected_updates"),
        [("bake", []), ("update_blue", [NEW])],
    )
    def test_rollback_disabled_still_restores_traffic_but_leaves_blue(
        self, failing_step: str, expected_updates: list[str]
    ) -> None:
        """rollback.enabled=false: the listener is restored and green deleted; blue is not reverted."""
        aws, run = start(rollback={"enabled": False, "alarm_names": ["web-5xx"]})
        deploy_until(aws, run, failing_step)
        run.state.fail("health_check_failed", "500", Trigger.HEALTH_CHECK)
        rollback_to_end(aws, run)
        assert [u.task_definition_arn for u in aws.ecs.updates] == expected_updates
        assert aws.elb.listeners[LISTENER]["DefaultActions"] == ORIGINAL
        assert not aws.ecs.is_active(GREEN_SERVICE)

    def test_rollback_disabled_after_blue_updated_is_not_reported_as_rolled_back(self) -> None:
        """Rollback disabled and blue left on the new revision: the outcome is failed, not rolled_back."""
        aws, run = start(rollback={"enabled": False, "alarm_names": ["web-5xx"]})
        deploy_until(aws, run, "update_blue")
        aws.ecs.set_rollout("FAILED", "ECS deployment circuit breaker: tasks failed to start.")
        aws.step(BG.deploy, run)
        rollback_to_end(aws, run)
        state = run.state
        assert aws.ecs.task_definition == NEW
        assert state.failure is not None
        outcome = decide_outcome(state.failure.as_failure(), True, state.rollback_done, state.rollback_failed)
        assert outcome == "failed"

    def test_nothing_touched_means_nothing_to_undo(self) -> None:
        """A failure before green was created skips the rollback without any AWS call."""
        aws, run = start()
        run.state.fail("build_failed", "no", Trigger.ERROR)
        assert BG.rollback(run).skipped
        assert aws.journal == []


class TestRedelivery:
    def test_redelivered_create_after_the_call_does_not_create_a_second_green(self) -> None:
        """The worker died after CreateService, before the state was saved again: no second green."""
        aws, run = start()
        BG.deploy(run)  # created green; the pipeline's save after the step never happened
        again = aws.redeliver()
        aws.step(BG.deploy, again)
        aws.let_aws_progress()
        aws.step(BG.deploy, again)
        assert aws.ecs.created == [GREEN_SERVICE]
        assert again.memory.step > STEP_NAMES.index("wait_green")

    def test_redelivered_create_after_a_crash_before_the_call_creates_green(self) -> None:
        """The worker died between saving temp_created and CreateService: the redelivery creates green."""
        aws, run = start()
        aws.crash_at_save = len(aws.saved) + 1
        with pytest.raises(Crash):
            BG.deploy(run)
        assert aws.ecs.created == []
        again = aws.redeliver()
        aws.step(BG.deploy, again)
        assert aws.ecs.created == [GREEN_SERVICE]

    def test_redelivered_shift_after_the_call_shifts_once(self) -> None:
        """The listener moved, then the worker died: the redelivery does not shift again."""
        aws, run = start()
        deploy_until(aws, run, "wait_green")
        BG.deploy(run)  # green ready, shifted, into the bake; not saved afterwards
        again = aws.redeliver()
        aws.step(BG.deploy, again)
        assert [c.call for c in aws.elb.changes] == ["set_forward_weights"]
        assert again.memory.original_actions == ORIGINAL

    def test_redelivered_shift_after_a_crash_before_the_call_moves_traffic(self) -> None:
        """The worker died between saving listener_changed and ModifyListener: the redelivery shifts."""
        aws, run = start()
        deploy_until(aws, run, "wait_green")  # green is ready: the next call verifies and shifts
        aws.crash_at_save = len(aws.saved) + 1
        with pytest.raises(Crash):
            BG.deploy(run)
        assert aws.elb.changes == []
        again = aws.redeliver()
        aws.step(BG.deploy, again)
        assert aws.elb.forward_weights(LISTENER) == {BLUE: 0, GREEN: 100}

    def test_redelivered_rollback_reverts_blue_once(self) -> None:
        """The worker died after saving the revert, before UpdateService: the redelivery sends it once."""
        aws, run = start()
        deploy_until(aws, run, "update_blue")
        aws.ecs.set_rollout("FAILED", "tasks failed to start")
        aws.step(BG.deploy, run)
        aws.crash_at_save = len(aws.saved) + 1
        with pytest.raises(Crash):
            BG.rollback(run)
        again = aws.redeliver()
        rollback_to_end(aws, again)
        assert [u.task_definition_arn for u in aws.ecs.updates] == [NEW, OLD]
        assert [c.call for c in aws.elb.changes].count("restore_default_actions") == 1
        assert aws.elb.listeners[LISTENER]["DefaultActions"] == ORIGINAL
        assert aws.ecs.deleted == [GREEN_SERVICE]

    def test_a_finished_rollback_called_again_changes_nothing(self) -> None:
        """Rollback is idempotent: a redelivered, already finished rollback makes no AWS call."""
        aws, run = start()
        deploy_until(aws, run, "bake")
        run.state.fail("health_check_failed", "500", Trigger.HEALTH_CHECK)
        rollback_to_end(aws, run)
        seen = list(aws.journal)
        again = aws.redeliver()
        assert aws.step(BG.rollback, again).done
        assert aws.journal == seen

    def test_redelivered_delete_after_a_crash_before_the_call_deletes_green(self) -> None:
        """The worker died between saving temp_deleted and DeleteService: the redelivery deletes green."""
        aws, run = start()
        deploy_until(aws, run, "bake")
        run.state.fail("health_check_failed", "500", Trigger.HEALTH_CHECK)
        aws.crash_at_save = len(aws.saved) + 1
        with pytest.raises(Crash):
            BG.rollback(run)
        again = aws.redeliver()
        rollback_to_end(aws, again)
        assert not aws.ecs.is_active(GREEN_SERVICE)


def test_state_survives_a_json_round_trip() -> None:
    """What the recipe keeps in strategy_state is JSON: a redelivered run carries on from it."""
    aws, run = start()
    deploy_until(aws, run, "bake")
    reloaded = PipelineState.model_validate_json(aws.saved[-1])
    assert reloaded.strategy_state["original_actions"] == ORIGINAL
    assert reloaded.strategy_state["temp_service"] == GREEN_SERVICE
