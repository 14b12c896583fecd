"""The linear strategy: equal steps up to 100 percent behind gates, one module registered by name."""

from __future__ import annotations

import pytest

from deploy_agent.core.errors import RequestRejected
from deploy_agent.core.outcome import Trigger
from deploy_agent.core.state import PipelineState
from deploy_agent.models import DeployToECSTask, LinearStrategy, parse_request
from deploy_agent.strategies import Run, strategy_for, strategy_names
from deploy_agent.strategies.linear import plan_linear_weights
from deploy_agent.testing import BLUE_TG_ARN as BLUE
from deploy_agent.testing import GREEN_TG_ARN as GREEN
from deploy_agent.testing import LISTENER_ARN as LISTENER
from deploy_agent.testing import FakeAws, probe_failed, traffic_aws, traffic_state

LINEAR = strategy_for("linear")
HEALTH = {"url": "http://web.example/health", "unhealthy_threshold": 2}


class TestPlan:
    @pytest.mark.parametrize(
        ("step_percent", "pause", "expected"),
        [
            pytest.param(25, 60, [(25, 60), (50, 60), (75, 60), (100, 0)], id="quarters end at 100"),
            pytest.param(
                30,
                10,
                [(30, 10), (60, 10), (90, 10), (100, 0)],
                id="a remainder step ends at 100",
            ),
            pytest.param(100, 5, [(100, 0)], id="one step of 100 percent is a blue-green switch"),
            pytest.param(1, 0, [(w, 0) for w in range(1, 101)], id="one percent steps make a hundred steps"),
            pytest.param(50, 0, [(50, 0), (100, 0)], id="halves"),
        ],
    )
    def test_weights_and_pauses(self, step_percent: int, pause: int, expected: list[tuple[int, int]]) -> None:
        """The steps grow by step_percent up to 100; only the steps short of 100 hold the pause."""
        plans = plan_linear_weights(step_percent, pause)
        assert [(p.weight, p.pause_seconds) for p in plans] == expected
        assert [p.index for p in plans] == list(range(len(expected)))

    @pytest.mark.parametrize(("step_percent", "pause"), [(0, 1), (101, 1), (10, -1)])
    def test_impossible_steps_are_refused(self, step_percent: int, pause: int) -> None:
        """A step outside 1-100 or a negative pause is a programming error, not a plan."""
        with pytest.raises(ValueError, match=r"step_percent|pause"):
            plan_linear_weights(step_percent, pause)


class TestMessage:
    def _message(self, **strategy: object) -> dict[str, object]:
        lb = {"listener_arn": LISTENER, "blue_target_group_arn": BLUE, "green_target_group_arn": GREEN}
        return {
            "cluster_name": "c",
            "service_name": "web",
            "image": {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1"},
            "strategy": {"type": "linear", "load_balancer": lb, **strategy},
        }

    def test_the_registry_knows_linear_and_the_message_accepts_it(self) -> None:
        """Linear is registered by its module alone and the message's strategy union includes it."""
        assert "linear" in strategy_names()
        message = parse_request(self._message(step_percent=20, step_pause_seconds=30))
        assert isinstance(message.strategy, LinearStrategy)
        assert (message.strategy.step_percent, message.strategy.step_pause_seconds) == (20, 30)

    @pytest.mark.parametrize("step_percent", [0, 101])
    def test_a_step_outside_1_to_100_is_rejected_naming_the_field(self, step_percent: int) -> None:
        """The error names strategy.step_percent, without pydantic's union tag."""
        with pytest.raises(RequestRejected) as caught:
            parse_request(self._message(step_percent=step_percent))
        assert [e["field"] for e in caught.value.errors or []] == ["strategy.step_percent"]

    def test_a_missing_load_balancer_is_rejected(self) -> None:
        """Linear moves traffic with a listener: the load balancer is required."""
        message = self._message(step_percent=10)
        message["strategy"] = {"type": "linear", "step_percent": 10}
        with pytest.raises(RequestRejected) as caught:
            parse_request(message)
        assert "strategy.load_balancer" in [e["field"] for e in caught.value.errors or []]


def start(
    step_percent: int, pause: int, health_check: dict[str, object] | None = None
) -> tuple[FakeAws, Run]:
    aws = traffic_aws()
    state = traffic_state(
        {"type": "linear", "step_percent": step_percent, "step_pause_seconds": pause},
        aws.clock,
        health_check=health_check,
    )
    run = aws.run(state)
    assert aws.step(LINEAR.preflight, run).done
    assert run.state.failure is None
    return aws, run


def drive(aws: FakeAws, run: Run, method: str = "deploy", limit: int = 400) -> None:
    call = getattr(LINEAR, method)
    for _ in range(limit):
        progress = aws.step(call, run)
        if progress.done:
            return
        aws.let_aws_progress()
        aws.clock.advance(progress.wait_seconds)
    raise AssertionError(f"{method} never finished")


def listener_weights(aws: FakeAws) -> list[dict[str, int]]:
    return [
        c.detail
        for c in aws.journal
        if c.call.startswith(("set_forward", "restore_default", "modify_listener"))
    ]


class TestRecipe:
    def test_traffic_moves_in_equal_steps_then_the_original_is_promoted(self) -> None:
        """25% steps put 25, 50, 75 and 100 percent on green, then blue runs the new revision and
        the listener goes back to blue; the temporary service is deleted last."""
        aws, run = start(25, 60)
        drive(aws, run)
        assert run.state.failure is None
        shares = [w.get(GREEN, 0) for w in listener_weights(aws)]
        assert shares[:4] == [25, 50, 75, 100]
        assert listener_weights(aws)[-1] == {BLUE: 1}
        calls = [c.call for c in aws.journal]
        last_listener_change = max(i for i, c in enumerate(aws.journal) if c.resource == LISTENER)
        assert calls.index("update_service") < last_listener_change  # promoted before traffic goes home
        assert calls[-1] == "delete_service"
        assert run.memory.weight == 100

    def test_each_step_holds_its_pause(self) -> None:
        """The recipe takes at least the pauses of the steps short of 100 percent on the clock."""
        aws, run = start(50, 120)
        began = aws.clock()
        drive(aws, run)
        assert (aws.clock() - began).total_seconds() >= 120

    def test_a_failing_gate_at_step_two_rolls_back_naming_the_step(self) -> None:
        """Health fails while 40% is on green: the deployment fails at weight_40, the listener is
        restored to its original actions and the temporary service deleted; blue is never updated."""
        aws, run = start(20, 30, health_check=HEALTH)
        for _ in range(200):
            if run.memory.weight == 40:
                break
            progress = aws.step(LINEAR.deploy, run)
            assert run.state.failure is None
            aws.let_aws_progress()
            aws.clock.advance(progress.wait_seconds)
        aws.prober.script = [probe_failed(503)]
        drive(aws, run)
        assert run.state.failure is not None
        assert run.state.failure.trigger is Trigger.HEALTH_CHECK
        assert "step 2 (40%)" in run.state.failure.message
        assert run.memory.failed_step == "weight_40"
        drive(aws, run, "rollback")
        assert run.state.rollback_done
        assert listener_weights(aws)[-1] == {BLUE: 1}
        assert "update_service" not in [c.call for c in aws.journal]
        assert [c.call for c in aws.journal][-1] == "delete_service"

    def test_a_redelivered_step_resumes_from_the_saved_memory(self) -> None:
        """After a save, a new run of the persisted state carries on at the same step and weight."""
        aws, run = start(25, 60)
        for _ in range(200):
            if run.memory.weight == 50:
                break
            progress = aws.step(LINEAR.deploy, run)
            aws.let_aws_progress()
            aws.clock.advance(progress.wait_seconds)
        again = aws.redeliver()
        assert again.memory.weight == 50
        assert again.memory.step == run.memory.step
        drive(aws, again)
        assert again.state.failure is None
        assert [w.get(GREEN, 0) for w in listener_weights(aws)][:4] == [25, 50, 75, 100]


def test_the_memory_is_json_in_the_state() -> None:
    """What linear keeps survives a JSON round trip of the state (as Redis holds it)."""
    aws, run = start(50, 0)
    drive(aws, run)
    reloaded = PipelineState.model_validate_json(run.state.model_dump_json())
    assert reloaded.strategy_state["weight"] == 100
    assert DeployToECSTask.model_validate(reloaded.request).strategy.type == "linear"
