"""The rolling recipe, step by step, against the scripted ECS that ships with the package."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from deploy_agent.core.errors import RolloutFailed
from deploy_agent.core.outcome import Phase, Trigger
from deploy_agent.core.polling import PollPolicy
from deploy_agent.core.ports import RevisionsPort
from deploy_agent.core.state import PipelineState
from deploy_agent.models.request import DeployToECSTask
from deploy_agent.strategies import Ports, Run, Tunables, strategy_for, strategy_names
from deploy_agent.strategies.steps.memory import ServiceUpdateMemory
from deploy_agent.testing import (
    FakeAlarms,
    FakeClock,
    FakeEcs,
    FakeElb,
    FakeProber,
    FakeRevisions,
    FakeTrafficWatch,
    deployment,
)

OLD = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"
NEW = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2"


IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:" + "a" * 64


def rolling_message(strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a complete, valid message for service ``s`` of cluster ``c`` (the request is the model)."""
    return {
        "deployment_id": "d-1",
        "cluster_name": "c",
        "service_name": "s",
        "image": {"uri": IMAGE},
        "strategy": strategy or {"type": "rolling"},
        "desired_count": None,
    }


class RefusingRevisions:
    """A ``RevisionsPort`` whose revisions can be neither used nor restored."""

    def usable_revision(self, task_definition_arn: str) -> str:
        raise RolloutFailed(f"cannot roll back to {task_definition_arn}")


def make_run(
    strategy: dict[str, Any] | None = None,
    timeout: float = 600,
    revisions: RevisionsPort | None = None,
) -> tuple[Run[ServiceUpdateMemory], FakeEcs, FakeClock, list[Phase]]:
    """Return a run of deployment d-1 (revision 2 of ``s``), its ECS, its clock and its saves' phases."""
    clock = FakeClock()
    ecs = FakeEcs(OLD, [deployment("ecs-svc/0", OLD, "COMPLETED")])
    state = PipelineState(
        deployment_id="d-1",
        request=rolling_message(strategy),
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
    run: Run[ServiceUpdateMemory] = Run(
        state=state,
        request=DeployToECSTask.model_validate(state.request),
        memory=ServiceUpdateMemory(),
        ports=Ports(
            ecs=ecs,
            elb=FakeElb(),
            alarms=FakeAlarms(),
            prober=FakeProber(),
            traffic=FakeTrafficWatch(),
            revisions=revisions or FakeRevisions(),
            clock=clock,
        ),
        emit=lambda *_a, **_k: None,
        tunables=Tunables(poll=PollPolicy(fast=0.5, slow=0.5), rollback_timeout_seconds=60),
        persist=lambda: saves.append(state.phase),
    )
    return run, ecs, clock, saves


ROLLING = strategy_for("rolling")


class TestDeploy:
    def test_first_step_saves_the_phase_then_updates_the_service(self) -> None:
        """UpdateService is sent once, after the updating phase is durable, with the message's percents."""
        run, ecs, _, saves = make_run(
            {"type": "rolling", "maximum_percent": 150, "minimum_healthy_percent": 50}
        )
        progress = ROLLING.deploy(run)
        assert not progress.done
        assert progress.wait_seconds == 0.5
        assert saves == [Phase.UPDATING]
        assert [
            (u.task_definition_arn, u.maximum_percent, u.minimum_healthy_percent) for u in ecs.updates
        ] == [(NEW, 150, 50)]

    def test_in_progress_waits_without_a_second_update(self) -> None:
        """While ECS works, the step only polls."""
        run, ecs, _, _ = make_run()
        ROLLING.deploy(run)
        assert not ROLLING.deploy(run).done
        assert len(ecs.updates) == 1
        assert run.state.ecs_deployment_id == "ecs-svc/1"

    def test_following_the_rollout_is_not_woken_by_a_task_s_news(self) -> None:
        """The verdict is in the deployments, whose own state changes wake the stage: while it
        follows ECS's rollout a task starting or stopping (a crash loop's) does not."""
        run, _, _, _ = make_run()
        ROLLING.deploy(run)
        following = ROLLING.deploy(run)
        assert (following.done, following.quiet_tasks) == (False, True)

    def test_a_woken_look_that_reads_the_rollout_before_its_verdict_looks_again_soon(self) -> None:
        """With events: woken by COMPLETED at 8 s, the look still reads IN_PROGRESS, one task up (a read
        from just before). It looks again at the fast poll, backing off, instead of waiting the
        15-s safety interval for news it has already had (8.6% of deployments at 500 did)."""
        run, ecs, clock, _ = make_run()
        run = replace(run, tunables=Tunables(poll=PollPolicy(fast=0.5, slow=5.0, safety=15.0)))
        assert ROLLING.deploy(run).wait_seconds == 15.0  # UpdateService: the verdict will be news
        clock.advance(8)
        ecs.deployments[0]["runningCount"] = 1  # counts moved, no verdict yet
        assert ROLLING.deploy(run).wait_seconds == 0.5
        clock.advance(0.5)
        assert ROLLING.deploy(run).wait_seconds == 1.0
        ecs.settle()
        clock.advance(1)
        assert ROLLING.deploy(run).done

    def test_a_look_at_its_own_safety_time_owes_nothing(self) -> None:
        """With events, a look that comes when its wait is up and sees the rollout going on waits the
        safety interval again: no news was missed."""
        run, _, clock, _ = make_run()
        run = replace(run, tunables=Tunables(poll=PollPolicy(fast=0.5, slow=5.0, safety=15.0)))
        ROLLING.deploy(run)
        clock.advance(15)
        assert ROLLING.deploy(run).wait_seconds == 15.0

    def test_completed_moves_to_verifying(self) -> None:
        """Our deployment COMPLETED ends the deploy stage and starts verification."""
        run, ecs, _, _ = make_run()
        ROLLING.deploy(run)
        ecs.settle()
        assert ROLLING.deploy(run).done
        assert run.state.phase is Phase.VERIFYING
        assert run.state.failure is None

    def test_circuit_breaker_failure_is_recorded(self) -> None:
        """A FAILED rolloutState is a circuit-breaker failure with ECS's reason."""
        run, ecs, _, _ = make_run()
        ROLLING.deploy(run)
        ecs.set_rollout("FAILED", "ECS deployment circuit breaker: tasks failed to start.")
        assert ROLLING.deploy(run).done
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.CIRCUIT_BREAKER
        assert "tasks failed to start" in run.state.failure.message
        assert run.state.ecs_rolled_back is False

    def test_deadline_fails_with_the_deadline_trigger(self) -> None:
        """Past the deadline the step stops waiting and records why."""
        run, _, clock, _ = make_run(timeout=30)
        ROLLING.deploy(run)
        clock.advance(31)
        assert ROLLING.deploy(run).done
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.DEADLINE

    def test_lost_update_is_sent_again(self) -> None:
        """A redelivered stage whose UpdateService never reached ECS sends it (once more)."""
        run, ecs, _, _ = make_run()
        run.state.phase = Phase.UPDATING  # saved, then the worker died before the call
        ROLLING.deploy(run)
        assert [u.task_definition_arn for u in ecs.updates] == [NEW]


class TestRollback:
    def test_rollback_puts_the_previous_definition_back_and_waits(self) -> None:
        """Rollback updates the service to the previous revision and finishes when it is settled."""
        run, ecs, _, _ = make_run()
        ROLLING.deploy(run)
        run.state.fail("health_check_failed", "500", Trigger.HEALTH_CHECK)
        assert not ROLLING.rollback(run).done
        assert ecs.updates[-1].task_definition_arn == OLD
        assert not ROLLING.rollback(run).done
        ecs.settle()
        assert ROLLING.rollback(run).done
        assert run.state.rollback_done

    def test_a_rollback_settling_is_not_woken_by_its_tasks_news(self) -> None:
        """Settled is the previous revision's deployment COMPLETED and alone, which ECS announces: the
        rollback's tasks coming and going (a crash loop's too) do not wake the wait."""
        run, _, _, _ = make_run()
        ROLLING.deploy(run)
        run.state.fail("health_check_failed", "500", Trigger.HEALTH_CHECK)
        ROLLING.rollback(run)
        settling = ROLLING.rollback(run)
        assert (settling.done, settling.quiet_tasks) == (False, True)
        assert ROLLING.deploy(make_run()[0]).quiet_tasks  # and so is the first wait after UpdateService

    def test_with_events_the_rollback_s_first_wait_is_for_news_not_a_look_soon(self) -> None:
        """ECS rolling back (or our own UpdateService sent): the next thing worth a look is ECS's
        announcement that the service settled, so the first wait is the quiet safety wait (news that
        came meanwhile is carried over by the agenda); without events it is the slow poll."""
        for ecs_rolled_back in (True, False):
            run, _, _, _ = make_run()
            run = replace(run, tunables=Tunables(poll=PollPolicy(fast=0.5, slow=5.0, safety=15.0)))
            ROLLING.deploy(run)
            run.state.ecs_rolled_back = ecs_rolled_back
            run.state.fail("rollout_failed", "ECS failed it", Trigger.CIRCUIT_BREAKER)
            first = ROLLING.rollback(run)
            assert (first.done, first.wait_seconds, first.quiet_tasks) == (False, 15.0, True)
        run, _, _, _ = make_run()
        ROLLING.deploy(run)
        run.state.fail("health_check_failed", "500", Trigger.HEALTH_CHECK)
        assert ROLLING.rollback(run).wait_seconds == 0.5  # the slow poll of make_run's policy

    def test_a_rollback_settling_knows_ours_failed(self) -> None:
        """News of our deployment (ECS marking it FAILED as its rollback ends) does not wake the settling:
        each wait names it as known; the rollback's own news does wake it."""
        run, ecs, _, _ = make_run()
        ROLLING.deploy(run)
        ecs_rolls_back(ecs, ours_listed=True)
        ROLLING.deploy(run)
        assert run.state.ecs_deployment_id == "ecs-svc/1"
        first, settling = ROLLING.rollback(run), ROLLING.rollback(run)
        assert (first.known, settling.known) == ("ecs-svc/1", "ecs-svc/1")

    def test_ecs_rollback_is_only_awaited(self) -> None:
        """When ECS rolled back by itself, the worker sends no UpdateService of its own."""
        run, ecs, _, _ = make_run()
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
        run, _, clock, _ = make_run()
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


ROLLBACK_REASON = "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/0."


def ecs_rolls_back(ecs: FakeEcs, ours_listed: bool, ours_rollout: str = "IN_PROGRESS") -> None:
    """Make the fake show ECS's own rollback: a new PRIMARY on the old revision, ours still listed or gone."""
    ours = ecs.deployments[0]
    rollback = deployment("ecs-svc/rb", OLD, "IN_PROGRESS")
    rollback["rolloutStateReason"] = ROLLBACK_REASON
    ours["status"], ours["rolloutState"] = "ACTIVE", ours_rollout
    ecs.deployments[:] = [rollback, ours] if ours_listed else [rollback]
    ecs.task_definition = OLD


class TestTheServicesOwnSettings:
    def test_a_message_without_settings_sends_none(self) -> None:
        """Percents and circuit breaker left out of the message are left out of UpdateService."""
        run, ecs, _, _ = make_run()
        ROLLING.deploy(run)
        sent: Any = ecs.updates[0]  # testing.UpdateCall still types the settings as required
        assert (sent.maximum_percent, sent.minimum_healthy_percent) == (None, None)
        assert (sent.circuit_breaker, sent.circuit_breaker_rollback) == (None, None)

    def test_one_breaker_flag_takes_the_other_from_the_service(self) -> None:
        """The API needs both breaker flags: the one the message omits is the service's own."""
        run, ecs, _, _ = make_run({"type": "rolling", "circuit_breaker": True})
        original = ecs.describe_service

        def with_config(cluster: str, service: str) -> dict[str, Any]:
            found = original(cluster, service)
            found["deploymentConfiguration"] = {
                "deploymentCircuitBreaker": {"enable": False, "rollback": True}
            }
            return found

        ecs.describe_service = with_config  # type: ignore[method-assign]
        ROLLING.deploy(run)
        assert (ecs.updates[0].circuit_breaker, ecs.updates[0].circuit_breaker_rollback) == (True, True)


class TestEcsRollbackIsNeverFought:
    def test_the_reply_names_our_deployment_and_a_stale_read_is_only_waited_out(self) -> None:
        """UpdateService's new PRIMARY is the hint; a stale read neither fails nor re-sends."""
        run, ecs, _, _ = make_run()
        ROLLING.deploy(run)
        assert run.memory.ecs_deployment_hint == "ecs-svc/1"
        fresh = list(ecs.deployments)
        ecs.deployments[:] = [deployment("ecs-svc/0", OLD, "COMPLETED")]  # the state before the update
        ecs.task_definition = OLD
        assert not ROLLING.deploy(run).done
        assert run.state.failure is None
        assert len(ecs.updates) == 1
        ecs.deployments[:] = fresh
        ecs.task_definition = NEW
        assert not ROLLING.deploy(run).done
        assert run.state.ecs_deployment_id == "ecs-svc/1"

    @pytest.mark.parametrize(
        ("ours_listed", "ours_rollout"),
        [(True, "IN_PROGRESS"), (True, "FAILED"), (False, "FAILED")],
        ids=["the long window", "seen late, ours failed", "seen late, ours gone"],
    )
    def test_ecs_rollback_is_rolled_back_by_the_circuit_breaker(
        self, ours_listed: bool, ours_rollout: str
    ) -> None:
        """Every shape of ECS's rollback ends the deploy as a circuit-breaker failure that ECS undoes."""
        run, ecs, _, _ = make_run()
        ROLLING.deploy(run)
        ROLLING.deploy(run)  # ours seen once
        ecs_rolls_back(ecs, ours_listed, ours_rollout)
        assert ROLLING.deploy(run).done
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.CIRCUIT_BREAKER
        assert run.state.ecs_rolled_back is True
        assert len(ecs.updates) == 1

    def test_a_rollback_done_before_our_first_look_is_not_re_sent(self) -> None:
        """ECS rolled back before we ever saw ours: no second UpdateService of the broken revision."""
        run, ecs, _, _ = make_run()
        ROLLING.deploy(run)
        done = deployment("ecs-svc/rb", OLD, "COMPLETED")
        ecs.deployments[:] = [done]
        ecs.task_definition = OLD
        assert ROLLING.deploy(run).done
        assert run.state.ecs_rolled_back is True
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.CIRCUIT_BREAKER
        assert not ROLLING.rollback(run).done  # notes ECS's rollback, sends nothing
        assert ROLLING.rollback(run).done
        assert run.state.rollback_done
        assert [u.task_definition_arn for u in ecs.updates] == [NEW]

    def test_the_rollback_stage_only_waits_for_ecs(self) -> None:
        """During ECS's long rollback our rollback step sends nothing and ends once ECS settles."""
        run, ecs, _, _ = make_run()
        ROLLING.deploy(run)
        ecs_rolls_back(ecs, ours_listed=True)
        ROLLING.deploy(run)
        assert not ROLLING.rollback(run).done
        assert not ROLLING.rollback(run).done
        ecs.settle()
        assert ROLLING.rollback(run).done
        assert run.state.rollback_done
        assert [u.task_definition_arn for u in ecs.updates] == [NEW]


class TestDeregisteredRevision:
    def test_the_rollback_goes_to_the_re_registered_copy(self) -> None:
        """An unusable previous revision is replaced by the runtime's copy before UpdateService."""
        copy = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3"
        run, ecs, _, _ = make_run(revisions=FakeRevisions(copies={OLD: copy}))
        ROLLING.deploy(run)
        run.state.fail("health_check_failed", "500", Trigger.HEALTH_CHECK)
        ROLLING.rollback(run)
        assert ecs.updates[-1].task_definition_arn == copy
        assert run.state.previous_task_definition_arn == copy

    def test_a_revision_that_cannot_be_restored_fails_before_any_update(self) -> None:
        """When the revision cannot be restored the rollback raises before it sends UpdateService."""
        run, ecs, _, _ = make_run(revisions=RefusingRevisions())
        ROLLING.deploy(run)
        run.state.fail("health_check_failed", "500", Trigger.HEALTH_CHECK)
        with pytest.raises(RolloutFailed):
            ROLLING.rollback(run)
        assert [u.task_definition_arn for u in ecs.updates] == [NEW]

    def test_the_failure_to_settle_is_kept_for_the_stage(self) -> None:
        """A rollback that does not settle leaves its reason for the rollback stage's record."""
        run, _, clock, _ = make_run()
        ROLLING.deploy(run)
        ROLLING.rollback(run)
        clock.advance(61)
        ROLLING.rollback(run)
        assert run.state.rollback_failure is not None
        assert "did not settle" in run.state.rollback_failure
