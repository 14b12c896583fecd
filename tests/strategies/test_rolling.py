"""The rolling recipe, step by step, against the scripted ECS that ships with the package."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from deploy_agent.core.outcome import Phase, Trigger
from deploy_agent.core.state import PipelineState
from deploy_agent.strategies import Run, strategy_for, strategy_names
from deploy_agent.testing import FakeClock, FakeEcs, deployment

OLD = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"
NEW = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2"


def make_run(strategy: dict[str, Any] | None = None, timeout: float = 600) -> tuple[Run, FakeEcs, FakeClock]:
    clock = FakeClock()
    ecs = FakeEcs(OLD, [deployment("ecs-svc/0", OLD, "COMPLETED")])
    state = PipelineState(
        deployment_id="d-1",
        request={"strategy": strategy or {"type": "rolling"}, "desired_count": None},
        strategy="rolling",
        cluster="c",
        service="s",
        region="us-east-1",
        phase=Phase.REGISTERED,
        started_at=clock(),
        deadline=clock() + timedelta(seconds=timeout),
        task_definition_arn=NEW,
        previous_task_definition_arn=OLD,
    )
    saves: list[Phase] = []
    run = Run(
        state=state,
        ecs=ecs,
        now=clock,
        emit=lambda *_a, **_k: None,
        poll_seconds=0.5,
        extras={"save": lambda: saves.append(state.phase), "rollback_timeout": 60},
    )
    run.extras["saves"] = saves
    return run, ecs, clock


ROLLING = strategy_for("rolling")


class TestDeploy:
    def test_first_step_saves_the_phase_then_updates_the_service(self) -> None:
        """UpdateService is sent once, after the updating phase is durable, with the message's percents."""
        run, ecs, _ = make_run({"type": "rolling", "maximum_percent": 150, "minimum_healthy_percent": 50})
        progress = ROLLING.deploy(run)
        assert not progress.done
        assert progress.wait_seconds == 0.5
        assert run.extras["saves"] == [Phase.UPDATING]
        assert [
            (u.task_definition_arn, u.maximum_percent, u.minimum_healthy_percent) for u in ecs.updates
        ] == [(NEW, 150, 50)]

    def test_in_progress_waits_without_a_second_update(self) -> None:
        """While ECS works, the step only polls."""
        run, ecs, _ = make_run()
        ROLLING.deploy(run)
        assert not ROLLING.deploy(run).done
        assert len(ecs.updates) == 1
        assert run.state.ecs_deployment_id == "ecs-svc/1"

    def test_completed_moves_to_verifying(self) -> None:
        """Our deployment COMPLETED ends the deploy stage and starts verification."""
        run, ecs, _ = make_run()
        ROLLING.deploy(run)
        ecs.settle()
        assert ROLLING.deploy(run).done
        assert run.state.phase is Phase.VERIFYING
        assert run.state.failure is None

    def test_circuit_breaker_failure_is_recorded(self) -> None:
        """A FAILED rolloutState is a circuit-breaker failure with ECS's reason."""
        run, ecs, _ = make_run()
        ROLLING.deploy(run)
        ecs.set_rollout("FAILED", "ECS deployment circuit breaker: tasks failed to start.")
        assert ROLLING.deploy(run).done
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.CIRCUIT_BREAKER
        assert "tasks failed to start" in run.state.failure.message
        assert run.state.ecs_rolled_back is False

    def test_deadline_fails_with_the_deadline_trigger(self) -> None:
        """Past the deadline the step stops waiting and records why."""
        run, _, clock = make_run(timeout=30)
        ROLLING.deploy(run)
        clock.advance(31)
        assert ROLLING.deploy(run).done
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.DEADLINE

    def test_lost_update_is_sent_again(self) -> None:
        """A redelivered stage whose UpdateService never reached ECS sends it (once more)."""
        run, ecs, _ = make_run()
        run.state.phase = Phase.UPDATING  # saved, then the worker died before the call
        ROLLING.deploy(run)
        assert [u.task_definition_arn for u in ecs.updates] == [NEW]


class TestRollback:
    def test_rollback_puts_the_previous_definition_back_and_waits(self) -> None:
        """Rollback updates the service to the previous revision and finishes when it is settled."""
        run, ecs, _ = make_run()
        ROLLING.deploy(run)
        run.state.fail("health_check_failed", "500", Trigger.HEALTH_CHECK)
        assert not ROLLING.rollback(run).done
        assert ecs.updates[-1].task_definition_arn == OLD
        assert not ROLLING.rollback(run).done
        ecs.settle()
        assert ROLLING.rollback(run).done
        assert run.state.rollback_done

    def test_ecs_rollback_is_only_awaited(self) -> None:
        """When ECS rolled back by itself, the worker sends no UpdateService of its own."""
        run, ecs, _ = make_run()
        ROLLING.deploy(run)
        run.state.ecs_rolled_back = True
        ecs.update_service("c", "s", OLD, None, 200, 100, True, True)  # ECS's own rollback
        updates = len(ecs.updates)
        ROLLING.rollback(run)
        ecs.settle()
        assert ROLLING.rollback(run).done
        assert len(ecs.updates) == updates

    def test_rollback_that_never_settles_is_reported(self) -> None:
        """A rollback that does not settle in time ends with rollback_failed, not a hang."""
        run, _, clock = make_run()
        ROLLING.deploy(run)
        ROLLING.rollback(run)
        clock.advance(61)
        assert ROLLING.rollback(run).done
        assert run.state.rollback_failed


def test_rolling_is_registered_by_name() -> None:
    """Strategies are looked up by name, and an unknown name says which ones exist."""
    assert "rolling" in strategy_names()
    with pytest.raises(KeyError, match=r"known: .*rolling"):
        strategy_for("teleport")
