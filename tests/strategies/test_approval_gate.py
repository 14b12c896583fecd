"""The approval gate in each strategy: where it waits, what waiting leaves untouched, how it ends.

The strategies run against the package's fakes; the approvals live in a real Redis (``ApprovalBook``),
decided through ``tasks.approval.decide`` as the Celery tasks do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

from deploy_agent.adapters.approval_book import ApprovalBook
from deploy_agent.core.outcome import Phase, Trigger, decide_outcome
from deploy_agent.core.state import PipelineState
from deploy_agent.models.policy import ApprovalRule, Policy
from deploy_agent.strategies import Run, strategy_for
from deploy_agent.strategies.steps.approval import await_approval
from deploy_agent.testing import (
    GREEN_TG_ARN,
    IMAGE_URI,
    LISTENER_ARN,
    NEW_TASK_DEFINITION,
    OLD_TASK_DEFINITION,
    FakeAws,
    FakeClock,
    FakeEcs,
    FakeElb,
    deployment,
    traffic_aws,
    traffic_state,
)
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

RULE = ApprovalRule(name="production", clusters=["c"], timeout_seconds=600)
POLICY = Policy(approvals=[RULE])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    with LocalRedis(root=tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def conn(server: LocalRedis) -> Iterator[redis.Redis]:
    client: redis.Redis = server.client(0)
    client.flushdb()
    yield client
    client.close()  # type: ignore[no-untyped-call]


def gated(aws: FakeAws, state: PipelineState, book: ApprovalBook | None, poll: float = 2.0) -> Run:
    """Return a run of ``state`` whose approvals port is ``book``, looking again every ``poll`` s."""
    aws.approvals = book
    run = aws.run(state)
    return dataclasses.replace(run, tunables=dataclasses.replace(run.tunables, approval_poll_seconds=poll))


def decide(book: ApprovalBook, clock: FakeClock, decision: str, reason: str | None = None) -> str:
    return book.decide("d-1", decision, "alice@laptop", reason, clock())


def traffic_run(
    conn: redis.Redis,
    kind: str = "blue_green",
    policy: Policy | None = POLICY,
    timeout: float = 3600,
    gate: bool = True,
) -> tuple[FakeAws, Run, ApprovalBook]:
    aws = traffic_aws()
    strategy: dict[str, Any] = {"type": kind}
    if kind == "canary":
        strategy["steps"] = [{"weight": 10, "pause_seconds": 0}, {"weight": 100}]
    state = traffic_state(strategy, aws.clock, timeout_seconds=timeout)
    book = ApprovalBook(conn, 3600, policy)
    run = gated(aws, state, book if gate else None)
    assert aws.step(strategy_for(kind).preflight, run).done
    return aws, run, book


def advance(aws: FakeAws, run: Run, method: str = "deploy", limit: int = 60) -> list[float]:
    """Step the strategy, letting AWS progress, until it waits on the approval or is done; the waits."""
    waits: list[float] = []
    strategy = strategy_for(run.state.strategy)
    for _ in range(limit):
        progress = aws.step(getattr(strategy, method), run)
        if progress.done:
            return waits
        if run.state.awaiting_approval:
            waits.append(progress.wait_seconds)
            return waits
        aws.let_aws_progress()
        aws.clock.advance(progress.wait_seconds)
    raise AssertionError("never waited nor finished")


def listener_changes(aws: FakeAws) -> list[str]:
    return [change.call for change in aws.elb.changes] + [
        c.call for c in aws.journal if c.call == "modify_rule"
    ]


class TestBlueGreen:
    def test_waits_with_green_running_and_the_listener_on_blue(self, conn: redis.Redis) -> None:
        """It waits after green is running and checked; nothing on the listener moved meanwhile."""
        aws, run, _book = traffic_run(conn)
        waits = advance(aws, run)
        assert waits
        assert 0 < waits[0] <= 2.0
        assert run.memory.temp_created is True
        assert aws.ecs.is_active("web-green-d-1")
        assert listener_changes(aws) == []
        assert "awaiting_approval" in aws.kinds()
        # looking again while nobody decided: still waiting, one "awaiting_approval" event only
        for _ in range(3):
            aws.clock.advance(2.0)
            assert not aws.step(strategy_for("blue_green").deploy, run).done
        assert aws.kinds().count("awaiting_approval") == 1
        assert listener_changes(aws) == []

    def test_approved_goes_on_to_the_switch_and_succeeds(self, conn: redis.Redis) -> None:
        aws, run, book = traffic_run(conn)
        advance(aws, run)
        assert decide(book, aws.clock, "approved", "looks good") == "pending"
        advance(aws, run)
        assert run.state.failure is None
        assert run.state.approval is not None
        assert (run.state.approval.decision, run.state.approval.approver) == ("approved", "alice@laptop")
        assert run.state.approval.reason == "looks good"
        approved = dict(aws.events)["approved"]
        assert approved["approver"] == "alice@laptop"
        assert approved["comment"] == "looks good"
        assert listener_changes(aws)  # the listener moved only after the approval
        assert aws.kinds().index("approved") < aws.kinds().index("traffic_shifted")
        assert aws.ecs.task_definition == NEW_TASK_DEFINITION

    def test_denied_deletes_green_and_leaves_the_rest_as_it_was(self, conn: redis.Redis) -> None:
        aws, run, book = traffic_run(conn)
        advance(aws, run)
        decide(book, aws.clock, "denied", "not during the sale")
        assert aws.step(strategy_for("blue_green").deploy, run).done
        failure = run.state.failure
        assert failure is not None
        assert failure.type == "denied"
        assert "alice@laptop" in failure.message
        assert "not during the sale" in failure.message
        advance(aws, run, "rollback")
        assert not aws.ecs.is_active("web-green-d-1")
        assert listener_changes(aws) == []
        assert aws.ecs.task_definition == OLD_TASK_DEFINITION
        assert not [c for c in aws.journal if c.call == "update_service"]
        outcome = decide_outcome(
            failure.as_failure(), True, run.state.rollback_done, run.state.rollback_failed
        )
        assert outcome == "denied"
        assert dict(aws.events)["denied"]["reason"] == "not during the sale"

    def test_nobody_deciding_in_time_ends_timed_out_and_cleans_up(self, conn: redis.Redis) -> None:
        aws, run, book = traffic_run(conn)
        advance(aws, run)
        waits: list[float] = []
        for _ in range(400):
            progress = aws.step(strategy_for("blue_green").deploy, run)
            if progress.done:
                break
            waits.append(progress.wait_seconds)
            aws.clock.advance(progress.wait_seconds)
        failure = run.state.failure
        assert failure is not None
        assert (failure.type, failure.trigger) == ("approval_timed_out", Trigger.DEADLINE)
        assert decide_outcome(failure.as_failure(), True, False, False) == "timed_out"
        assert sum(waits) == pytest.approx(600, abs=0.01)  # the rule's timeout, looked at every 2 s
        assert max(waits) <= 2.0
        assert decide(book, aws.clock, "approved") == "timed_out"  # too late: refused
        advance(aws, run, "rollback")
        assert not aws.ecs.is_active("web-green-d-1")
        assert listener_changes(aws) == []

    def test_the_approval_deadline_never_passes_the_deployment_deadline(self, conn: redis.Redis) -> None:
        aws, run, _book = traffic_run(conn, timeout=100)
        advance(aws, run)
        approval = run.state.approval
        assert approval is not None
        assert approval.deadline == run.state.deadline
        assert approval.deadline - approval.requested_at < timedelta(seconds=100)

    def test_a_decision_just_past_the_deadline_is_refused(self, conn: redis.Redis) -> None:
        aws, run, book = traffic_run(conn)
        advance(aws, run)
        aws.clock.advance(601)
        assert decide(book, aws.clock, "approved") == "expired"

    def test_a_redelivered_step_still_waits_then_goes_on_when_approved(self, conn: redis.Redis) -> None:
        """A worker killed while waiting: the state saved in Redis waits on, without asking again."""
        aws, run, book = traffic_run(conn)
        advance(aws, run)
        asked = run.state.approval
        again = gated(aws, PipelineState.model_validate_json(aws.saved[-1]), book)
        assert again.state.awaiting_approval
        assert not aws.step(strategy_for("blue_green").deploy, again).done
        assert again.state.approval == asked
        assert aws.kinds().count("awaiting_approval") == 1
        decide(book, aws.clock, "approved")
        advance(aws, again)
        assert again.state.failure is None
        assert aws.ecs.task_definition == NEW_TASK_DEFINITION

    def test_the_redis_record_lost_is_asked_for_again_with_the_same_times(self, conn: redis.Redis) -> None:
        aws, run, _book = traffic_run(conn)
        advance(aws, run)
        asked = run.state.approval
        conn.flushdb()
        assert not aws.step(strategy_for("blue_green").deploy, run).done
        assert run.state.approval == asked
        assert conn.exists("deploy-agent:approval:d-1")

    def test_no_matching_rule_and_no_policy_never_wait(self, conn: redis.Redis) -> None:
        for policy in (Policy(approvals=[ApprovalRule(name="other", clusters=["prod-*"])]), None):
            aws, run, _book = traffic_run(conn, policy=policy, gate=policy is not None)
            advance(aws, run)
            assert run.state.failure is None
            assert run.state.approval is None
            assert "awaiting_approval" not in aws.kinds()
            assert aws.ecs.task_definition == NEW_TASK_DEFINITION


class TestCanary:
    def test_no_traffic_reaches_the_canary_before_the_approval(self, conn: redis.Redis) -> None:
        aws, run, book = traffic_run(conn, kind="canary")
        advance(aws, run)
        assert aws.ecs.is_active("web-canary-d-1")
        assert listener_changes(aws) == []
        assert aws.elb.forward_weights(LISTENER_ARN).get(GREEN_TG_ARN, 0) == 0
        decide(book, aws.clock, "approved")
        advance(aws, run)
        assert run.state.failure is None
        assert listener_changes(aws)


def rolling_run(conn: redis.Redis, manual: bool = False) -> tuple[FakeAws, Run, ApprovalBook]:
    ecs = FakeEcs(OLD_TASK_DEFINITION, [deployment("ecs-svc/0", OLD_TASK_DEFINITION, "COMPLETED")])
    aws = FakeAws(ecs, FakeElb())
    now = aws.clock()
    state = PipelineState(
        deployment_id="d-1",
        request={
            "deployment_id": "d-1",
            "cluster_name": "c",
            "service_name": "web",
            "image": {"uri": IMAGE_URI},
            "strategy": {"type": "rolling"},
            "rollback": {"enabled": True},
        },
        strategy="rolling",
        cluster="c",
        service="web",
        region="us-east-1",
        phase=Phase.REGISTERED,
        started_at=now,
        deadline=now + timedelta(hours=1),
        task_definition_arn=NEW_TASK_DEFINITION,
        previous_task_definition_arn=OLD_TASK_DEFINITION,
        manual_rollback=manual,
    )
    book = ApprovalBook(conn, 3600, POLICY)
    return aws, gated(aws, state, book), book


class TestRolling:
    def test_waits_before_update_service_and_denied_touches_nothing(self, conn: redis.Redis) -> None:
        aws, run, book = rolling_run(conn)
        rolling = strategy_for("rolling")
        for _ in range(3):
            assert not aws.step(rolling.deploy, run).done
            aws.clock.advance(2)
        assert run.state.awaiting_approval
        assert aws.journal == []  # no call that changes anything
        assert run.state.phase is Phase.REGISTERED
        decide(book, aws.clock, "denied", "freeze")
        assert aws.step(rolling.deploy, run).done
        assert run.state.failure is not None
        assert run.state.failure.type == "denied"
        assert aws.step(rolling.rollback, run).skipped  # nothing to undo
        assert aws.journal == []

    def test_approved_sends_update_service(self, conn: redis.Redis) -> None:
        aws, run, book = rolling_run(conn)
        rolling = strategy_for("rolling")
        assert not aws.step(rolling.deploy, run).done
        decide(book, aws.clock, "approved")
        assert not aws.step(rolling.deploy, run).done  # UpdateService sent, following the rollout
        assert [c.call for c in aws.journal] == ["update_service"]
        assert run.state.phase is Phase.UPDATING

    def test_an_operators_rollback_needs_no_approval(self, conn: redis.Redis) -> None:
        _aws, run, _book = rolling_run(conn, manual=True)
        assert await_approval(run).done
        assert run.state.approval is None
        assert not conn.exists("deploy-agent:approval:d-1")


class TestEcsNative:
    def _run(self, conn: redis.Redis) -> tuple[FakeAws, Run, ApprovalBook]:
        from tests.strategies.test_ecs_native import native_aws, native_state

        aws = native_aws()
        book = ApprovalBook(conn, 3600, POLICY)
        run = gated(aws, native_state(aws, {"type": "ecs_blue_green"}), book)
        assert aws.step(strategy_for("ecs_blue_green").deploy, run).done  # UpdateService sent
        aws.ecs.pause_at("POST_TEST_TRAFFIC_SHIFT", 0.0)
        return aws, run, book

    def test_the_approval_is_ecs_pause_hook_after_test_traffic(self, conn: redis.Redis) -> None:
        """ECS holds at POST_TEST_TRAFFIC_SHIFT while nobody decided: no CONTINUE, no production traffic."""
        aws, run, _book = self._run(conn)
        for _ in range(3):
            assert not aws.step(strategy_for("ecs_blue_green").deploy, run).done
            aws.clock.advance(2.0)
        assert run.state.awaiting_approval
        assert aws.ecs.answers == []
        assert aws.kinds().count("awaiting_approval") == 1
        hook = aws.ecs.native_configs[0]["lifecycleHooks"][-1]
        assert hook["timeoutConfiguration"]["timeoutInMinutes"] >= RULE.timeout_seconds / 60

    def test_approved_continues_the_hook(self, conn: redis.Redis) -> None:
        aws, run, book = self._run(conn)
        aws.step(strategy_for("ecs_blue_green").deploy, run)
        decide(book, aws.clock, "approved")
        aws.step(strategy_for("ecs_blue_green").deploy, run)
        assert [a[2] for a in aws.ecs.answers] == ["CONTINUE"]

    def test_denied_stops_ecs_with_rollback_and_ends_denied(self, conn: redis.Redis) -> None:
        """A denial never lets production traffic move: ECS's deployment is stopped with ROLLBACK."""
        aws, run, book = self._run(conn)
        aws.step(strategy_for("ecs_blue_green").deploy, run)
        decide(book, aws.clock, "denied", "not today")
        aws.step(strategy_for("ecs_blue_green").deploy, run)
        assert run.state.failure is not None
        assert aws.ecs.answers == []
        aws.step(strategy_for("ecs_blue_green").rollback, run)
        assert [s[1] for s in aws.ecs.stops] == ["ROLLBACK"]
        aws.ecs.finish("ROLLBACK_SUCCESSFUL", "stopped")
        aws.step(strategy_for("ecs_blue_green").rollback, run)
        failure = run.state.failure.as_failure()
        assert decide_outcome(failure, True, run.state.rollback_done, run.state.rollback_failed) == "denied"
