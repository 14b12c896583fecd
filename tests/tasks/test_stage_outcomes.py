"""How a stage ends on a real Redis: transient AWS failures wait, an undo that did not settle fails.

Issue 9, the worker's points 2 (a rollback of ours that does not settle is reported in the stage and
the result) and 3 (a throttled or failing read never fails a deployment).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

from deploy_agent.core.errors import AwsError, AwsThrottled
from deploy_agent.core.outcome import Phase, Trigger
from deploy_agent.core.state import PipelineState, utcnow
from deploy_agent.settings import Settings
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.tasks import steps
from deploy_agent.tasks.runtime import Runtime
from deploy_agent.tasks.stages import advance_stage
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

Step = Callable[[Runtime, Run[Any]], Progress]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    with LocalRedis(root=tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def rt(server: LocalRedis) -> Iterator[Runtime]:
    conn: redis.Redis = server.client(0)
    conn.flushdb()
    yield Runtime(settings=Settings(aws_retry_base_seconds=0.5, aws_retry_cap_seconds=4), redis=conn)
    conn.close()  # type: ignore[no-untyped-call]


def recorded(rt: Runtime, timeout: float = 600, phase: Phase = Phase.REGISTERED) -> str:
    now = utcnow()
    state = PipelineState(
        deployment_id="dep-1",
        request={
            "cluster_name": "c",
            "service_name": "web",
            "image": {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:2"},
            "strategy": {"type": "rolling"},
        },
        strategy="rolling",
        cluster="c",
        service="web",
        region="us-east-1",
        phase=phase,
        started_at=now,
        deadline=now + timedelta(seconds=timeout),
    )
    rt.store.create(state.deployment_id, state.model_dump(mode="json"))
    assert rt.lock("c", "web", "us-east-1").acquire(state.deployment_id)
    return state.deployment_id


def load(rt: Runtime, deployment_id: str) -> PipelineState:
    return PipelineState.model_validate(rt.store.load(deployment_id))


def raising(error: Exception) -> Step:
    def step(_rt: Runtime, _run: Run[Any]) -> Progress:
        raise error

    return step


class TestTransientFailures:
    def test_a_throttled_read_waits_with_growing_back_off(self, rt: Runtime) -> None:
        """Throttled three times in a row, the stage waits longer each time and never fails."""
        dep = recorded(rt)
        throttled = raising(
            AwsThrottled("Rate exceeded", operation="DescribeServices", code="ThrottlingException")
        )
        waits = [advance_stage(rt, dep, "deploy", throttled) for _ in range(3)]
        assert [w.done for w in waits] == [False, False, False]
        assert 0.25 <= waits[0].wait_seconds <= 0.5
        assert 1.0 <= waits[2].wait_seconds <= 2.0
        state = load(rt, dep)
        assert state.failure is None
        assert state.aws_retries == 3
        assert state.stage("deploy") is not None
        assert state.stage("deploy").outcome == "running"  # type: ignore[union-attr]

    def test_a_step_that_goes_through_restarts_the_back_off(self, rt: Runtime) -> None:
        """After a step without a transient failure the next throttle waits the base again."""
        dep = recorded(rt)
        throttled = raising(AwsThrottled("Rate exceeded", operation="ListTasks"))
        advance_stage(rt, dep, "deploy", throttled)
        advance_stage(rt, dep, "deploy", throttled)
        advance_stage(rt, dep, "deploy", lambda _rt, _run: Progress.wait(0.1))
        assert load(rt, dep).aws_retries == 0
        assert advance_stage(rt, dep, "deploy", throttled).wait_seconds <= 0.5
        assert load(rt, dep).aws_retries_total == 3

    def test_past_the_deadline_the_failure_stands(self, rt: Runtime) -> None:
        """A throttle after the deadline fails the stage: waiting has no time left."""
        dep = recorded(rt, timeout=-1)
        progress = advance_stage(
            rt, dep, "deploy", raising(AwsThrottled("Rate exceeded", operation="DescribeServices"))
        )
        assert progress.done
        state = load(rt, dep)
        assert state.failure is not None
        assert state.failure.type == "aws_throttled"

    def test_a_server_error_on_a_write_of_unknown_effect_fails(self, rt: Runtime) -> None:
        """A 5xx on RegisterTaskDefinition is not retried blindly: the stage fails."""
        dep = recorded(rt)
        error = AwsError("boom", operation="RegisterTaskDefinition", code="ServerException")
        assert advance_stage(rt, dep, "register", raising(error)).done
        assert load(rt, dep).stage("register").outcome == "failed"  # type: ignore[union-attr]


class TestRollbackThatDidNotSettle:
    def test_the_rollback_stage_reads_failed_with_the_reason(self, rt: Runtime) -> None:
        """rollback_failed makes the rollback stage failed, its detail the reason, the result failed."""
        dep = recorded(rt, phase=Phase.ROLLING_BACK)
        state = load(rt, dep)
        state.fail("health_check_failed", "500 three times", Trigger.HEALTH_CHECK)
        state.update_requested_at = state.started_at
        rt.store.save(dep, state.model_dump(mode="json"))

        def undo_times_out(_rt: Runtime, run: Run[Any]) -> Progress:
            run.state.rollback_requested = True
            run.state.rollback_failed = True
            run.state.rollback_failure = "the service did not settle on web:1 in time"
            return Progress.finished()

        assert advance_stage(rt, dep, "rollback", undo_times_out).done
        final = load(rt, dep)
        record = final.stage("rollback")
        assert record is not None
        assert record.outcome == "failed"
        assert record.detail == "the service did not settle on web:1 in time"
        assert steps.build_result(final).outcome == "failed"
