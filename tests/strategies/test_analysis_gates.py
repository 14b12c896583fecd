"""Analysis gates in a held step (``steps.gates.hold_gates``): measuring, holding, failing, recording."""

from __future__ import annotations

from typing import Any

from deploy_agent.core.analysis import QueryResult
from deploy_agent.core.outcome import Trigger
from deploy_agent.models.request import DeployToECSTask
from deploy_agent.strategies import Progress, Run, strategy_for
from deploy_agent.strategies.steps.gates import hold_gates
from deploy_agent.strategies.steps.memory import GateMemory
from deploy_agent.testing import BLUE_TG_ARN as BLUE
from deploy_agent.testing import GREEN_TG_ARN as GREEN
from deploy_agent.testing import FakeAws, sample, traffic_aws, traffic_state

CANARY = strategy_for("canary")
QUERY = 'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'
LOW, HIGH, EMPTY = sample(0.01), sample(0.31), QueryResult(())


def gate(**changes: Any) -> dict[str, Any]:
    """An error-rate gate: below 5 % succeeds, 5 % or more fails; 3 measurements 10 s apart."""
    return {
        "name": "error-rate",
        "url": "http://prometheus.internal:9090",
        "query": QUERY,
        "success_condition": "result < 0.05",
        "failure_condition": "result >= 0.05",
        "interval_seconds": 10,
        "count": 3,
        **changes,
    }


def held(*gates: dict[str, Any], weights: tuple[int, ...] = (10, 50, 100)) -> tuple[FakeAws, Run[Any]]:
    """Return fakes and a canary run whose message has ``gates`` as its analysis."""
    aws = traffic_aws()
    strategy = {"type": "canary", "steps": [{"weight": w, "pause_seconds": 5} for w in weights]}
    state = traffic_state(strategy, aws.clock)
    state.request["analysis"] = list(gates)
    return aws, aws.run(state)


def hold(aws: FakeAws, run: Run[Any], label: str = "step 2 (50%)", seconds: float = 5) -> Progress:
    """One look at the hold, persisted like a stage run."""
    return aws.step(lambda r: hold_gates(r, label, seconds), run)


def hold_to_end(aws: FakeAws, run: Run[Any], label: str = "step 2 (50%)", seconds: float = 5) -> float:
    """Look until the hold ends; return the seconds it took on the fake clock."""
    began = aws.clock()
    for _ in range(200):
        progress = hold(aws, run, label, seconds)
        if progress.done:
            return (aws.clock() - began).total_seconds()
        aws.clock.advance(progress.wait_seconds)
    raise AssertionError("the hold never ended")


class TestHolding:
    def test_step_is_held_until_every_measurement_is_taken(self) -> None:
        """A 5 s pause with 3 measurements 10 s apart holds 20 s: the pause alone does not end it."""
        aws, run = held(gate())
        aws.prometheus.script = [LOW]
        assert hold_to_end(aws, run) == 20
        assert run.state.failure is None
        assert len(aws.prometheus.queries) == 3

    def test_pause_longer_than_the_analysis_still_holds_its_time(self) -> None:
        """A passed analysis does not cut the pause short: 60 s of pause hold 60 s."""
        aws, run = held(gate())
        aws.prometheus.script = [LOW]
        assert hold_to_end(aws, run, seconds=60) == 60

    def test_consecutive_successes_end_the_analysis_early(self) -> None:
        """consecutive_success_limit 2 of count 10 ends after 2 successes in a row (10 s)."""
        aws, run = held(gate(count=10, consecutive_success_limit=2))
        aws.prometheus.script = [LOW]
        assert hold_to_end(aws, run) == 10
        assert len(aws.prometheus.queries) == 2

    def test_one_measurement_per_look(self) -> None:
        """Looking twice at the same moment queries once; the wait is until the next measurement."""
        aws, run = held(gate())
        aws.poll_seconds = 60
        aws.prometheus.script = [LOW]
        first = hold(aws, run)
        second = hold(aws, run)
        assert len(aws.prometheus.queries) == 1
        assert (first.done, first.wait_seconds) == (False, 5)
        assert second.wait_seconds == 5

    def test_every_gate_must_succeed(self) -> None:
        """With two gates the hold lasts until the slower one is done."""
        aws, run = held(gate(), gate(name="latency", query="p99", count=5, interval_seconds=10))
        aws.prometheus.answers = {QUERY: [LOW], "p99": [sample(0.01)]}
        assert hold_to_end(aws, run) == 40

    def test_each_hold_starts_the_analysis_afresh(self) -> None:
        """Step 3's hold measures count times again, whatever step 2 measured."""
        aws, run = held(gate())
        aws.prometheus.script = [LOW]
        hold_to_end(aws, run, "step 2 (50%)")
        hold_to_end(aws, run, "step 3 (100%)")
        assert len(aws.prometheus.queries) == 6
        assert [m["step"] for m in run.state.analysis] == ["step 2 (50%)"] * 3 + ["step 3 (100%)"] * 3

    def test_a_redelivered_hold_counts_on(self) -> None:
        """After a crash the next worker continues the measurements the memory holds."""
        aws, run = held(gate())
        aws.prometheus.script = [LOW]
        aws.clock.advance(hold(aws, run).wait_seconds)
        aws.clock.advance(hold(aws, run).wait_seconds)
        again = aws.redeliver()
        assert hold_to_end(aws, again) == 10
        assert len(aws.prometheus.queries) == 3

    def test_without_analysis_the_pause_alone_holds(self) -> None:
        """No analysis in the message: the step ends when its pause has elapsed, and nothing is queried."""
        aws, run = held()
        assert hold_to_end(aws, run) == 5
        assert aws.prometheus.queries == []


class TestFailing:
    def test_failed_gate_fails_the_step_naming_step_and_gate(self) -> None:
        """A failed measurement over failure_limit 0 fails the step with trigger analysis."""
        aws, run = held(gate())
        aws.prometheus.script = [HIGH]
        assert hold(aws, run).done
        failure = run.state.failure
        assert failure is not None
        assert failure.trigger is Trigger.ANALYSIS
        assert failure.type == "analysis_failed"
        assert failure.message == (
            "step 2 (50%): analysis error-rate failed: "
            "1 of 1 measurements failed (value 0.31, failure_condition result >= 0.05)"
        )

    def test_failures_within_the_limit_hold_on(self) -> None:
        """failure_limit 1: one failed measurement holds on, the second fails the step."""
        aws, run = held(gate(count=5, failure_limit=1))
        aws.prometheus.script = [HIGH]
        assert not hold(aws, run).done
        assert run.state.failure is None
        assert hold_to_end(aws, run) == 10
        assert run.state.failure is not None
        assert "2 of 2 measurements failed" in run.state.failure.message

    def test_inconclusive_fails_by_default(self) -> None:
        """An empty result is inconclusive, and inconclusive counts as failed unless paused."""
        aws, run = held(gate())
        aws.prometheus.script = [EMPTY]
        hold(aws, run)
        assert run.state.failure is not None
        assert "inconclusive: the query returned no series" in run.state.failure.message

    def test_inconclusive_pause_holds_the_step_until_conclusive(self) -> None:
        """inconclusive pause: two empty answers hold the step on; three conclusive ones then end it."""
        aws, run = held(gate(inconclusive="pause"))
        aws.prometheus.script = [EMPTY, EMPTY, LOW]
        assert hold_to_end(aws, run) == 40
        assert run.state.failure is None
        assert [m["verdict"] for m in run.state.analysis] == ["inconclusive"] * 2 + ["successful"] * 3

    def test_inconclusive_pause_fails_past_its_limit(self) -> None:
        """inconclusive pause with inconclusive_limit 1 fails at the second inconclusive measurement."""
        aws, run = held(gate(inconclusive="pause", inconclusive_limit=1))
        aws.prometheus.script = [QueryResult(error="HTTP 503: timeout")]
        hold_to_end(aws, run)
        assert run.state.failure is not None
        assert "more than inconclusive_limit 1" in run.state.failure.message

    def test_a_canary_failing_analysis_at_step_two_goes_back_to_weight_zero(self) -> None:
        """Through the canary recipe: step 1 passes, step 2 fails its analysis, the undo sets weight 0."""
        aws, run = held(gate(count=2))
        aws.prometheus.script = [LOW, LOW, HIGH]
        for _ in range(100):
            progress = aws.step(CANARY.deploy, run)
            if progress.done:
                break
            aws.let_aws_progress()
            aws.clock.advance(progress.wait_seconds)
        assert run.state.failure is not None
        assert run.state.failure.message.startswith("step 2 (50%): analysis error-rate failed")
        for _ in range(50):
            if aws.step(CANARY.rollback, run).done:
                break
            aws.let_aws_progress()
        weights = [c.weights for c in aws.elb.changes if c.call == "set_forward_weights"]
        assert weights == [{BLUE: 90, GREEN: 10}, {BLUE: 50, GREEN: 50}]
        assert aws.elb.changes[-1].call == "restore_default_actions"


class TestRecording:
    def test_each_measurement_is_in_the_state_events_and_verdicts(self) -> None:
        """A measurement goes into state.analysis, an analysis_measurement event and the verdict count."""
        aws, run = held(gate())
        aws.prometheus.script = [LOW]
        hold(aws, run)
        (entry,) = run.state.analysis
        assert {k: entry[k] for k in ("gate", "step", "query", "value", "verdict")} == {
            "gate": "error-rate",
            "step": "step 2 (50%)",
            "query": QUERY,
            "value": 0.01,
            "verdict": "successful",
        }
        assert entry["at"] == aws.clock().isoformat()
        assert [fields for kind, fields in aws.events if kind == "analysis_measurement"] == [entry]
        assert aws.verdicts.counted == [("prometheus", "passed")]
        assert aws.prometheus.queries == [("http://prometheus.internal:9090", QUERY)]

    def test_an_inconclusive_measurement_has_no_value(self) -> None:
        """An errored query is recorded with value None, verdict inconclusive and the error as reason."""
        aws, run = held(gate(inconclusive="pause"))
        aws.prometheus.script = [QueryResult(error="HTTP 400: bad_data: parse error")]
        hold(aws, run)
        (entry,) = run.state.analysis
        assert (entry["value"], entry["verdict"]) == (None, "inconclusive")
        assert "bad_data" in entry["reason"]
        assert aws.verdicts.counted == [("prometheus", "inconclusive")]

    def test_health_and_alarm_gates_count_their_verdicts(self) -> None:
        """Each look counts the health and alarm gates it ran (passed or failed)."""
        aws, _ = held()
        state = traffic_state(
            {"type": "canary", "steps": [{"weight": 10}]},
            aws.clock,
            health_check={"url": "http://web.example/health", "max_latency_ms": 5},
            rollback={"alarm_names": ["web-5xx"]},
        )
        aws.alarms.set_state("web-5xx", "ALARM")
        hold(aws, aws.run(state))
        assert aws.verdicts.counted == [("health", "passed"), ("alarm", "failed"), ("latency", "failed")]

    def test_the_result_keeps_the_latest_measurements(self) -> None:
        """state.analysis keeps the last 100 measurements, oldest first."""
        aws, run = held(gate(count=150, interval_seconds=1))
        aws.prometheus.script = [LOW]
        hold_to_end(aws, run)
        assert len(run.state.analysis) == 100
        assert run.state.analysis[0]["at"] < run.state.analysis[-1]["at"]


class TestAnyGateMemory:
    def test_a_memory_that_only_subclasses_gate_memory_can_hold_gates(self) -> None:
        """hold_gates needs no listener-driven memory: a bare GateMemory subclass holds and measures."""

        class HookMemory(GateMemory):
            hook_id: str | None = None

        aws, traffic_run = held(gate(count=1))
        aws.prometheus.script = [LOW]
        run: Run[HookMemory] = Run(
            state=traffic_run.state,
            request=DeployToECSTask.model_validate(traffic_run.state.request),
            memory=HookMemory(),
            ports=aws.ports(),
            emit=lambda kind, **fields: aws.events.append((kind, fields)),
        )
        assert hold_gates(run, "hook", 0).done
        assert run.state.failure is None
        assert run.memory.analysis["error-rate"].phase == "successful"
