"""What the status page shows of a deployment's end, gates and traffic, from its state and events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deploy_agent.core.outcome import Phase, Trigger
from deploy_agent.core.state import (
    FailureState,
    HookAnswer,
    LifecycleVisit,
    PipelineState,
    ServiceDeploymentState,
)
from deploy_agent.worker.status_data import (
    assess_ending,
    list_measurements,
    list_traffic_steps,
    summarize_deployment,
)

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
ARN = "arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/web/abc"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def measurement(step: str, value: float, verdict: str, seconds: float) -> dict[str, Any]:
    return {
        "gate": "error-rate",
        "step": step,
        "query": 'sum(rate(http_requests_total{code=~"5..", token="s3cret"}[1m]))',
        "value": value,
        "verdict": verdict,
        "reason": "value 0.3 met the failure condition",
        "at": at(seconds).isoformat(),
    }


def ended(type_: str, message: str, trigger: Trigger, **changes: Any) -> PipelineState:
    base: dict[str, Any] = {
        "deployment_id": "dep-1",
        "request": {"build": {"build_args": {"TOKEN": "s3cret"}}},
        "strategy": "canary",
        "cluster": "prod",
        "service": "web",
        "region": "us-east-1",
        "started_at": T0,
        "deadline": at(1200),
        "phase": Phase.DONE,
        "outcome": "rolled_back",
        "finished_at": at(60),
        "rollback_done": True,
        "failure": FailureState(type=type_, message=message, trigger=trigger),
    }
    return PipelineState(**{**base, **changes})


#: a canary whose analysis gate failed at step 2
CANARY = ended(
    "analysis_failed",
    "step 2 (50%): analysis error-rate failed: 2 of 2 measurements failed (limit 1)",
    Trigger.ANALYSIS,
    analysis=[
        measurement("step 1 (10%)", 0.01, "successful", 10),
        measurement("step 2 (50%)", 0.3, "failed", 20),
        measurement("step 2 (50%)", 0.35, "failed", 25),
    ],
)
CANARY_EVENTS: list[dict[str, Any]] = [
    {"event": "traffic_shifted", "label": "step 1 (10%)", "weights": {"blue": 90, "green": 10}},
    {"event": "zero_downtime_checked", "label": "step 1 (10%)", "requests": 240, "failures": 0},
    {"event": "build_step", "line": "TOKEN=s3cret"},
    {"event": "traffic_shifted", "label": "step 2 (50%)", "weights": {"blue": 50, "green": 50}},
    {"event": "traffic_restored", "listener": "app/lb/123"},
]
for _second, _event in zip((5, 8, 15, 15, 30), CANARY_EVENTS, strict=True):
    _event["at"] = at(_second).isoformat()


def native(*hooks: HookAnswer, status: str = "ROLLBACK_SUCCESSFUL") -> ServiceDeploymentState:
    return ServiceDeploymentState(
        arn=ARN,
        status=status,
        status_reason="stopped by deploy-agent",
        lifecycle_stages=[
            LifecycleVisit(stage="PRE_SCALE_UP", at=at(1)),
            LifecycleVisit(stage="PRODUCTION_TRAFFIC_SHIFT", at=at(10)),
            LifecycleVisit(stage="ROLLBACK_IN_PROGRESS", at=at(30)),
        ],
        hooks=list(hooks),
    )


def hook(point: str, action: str, percent: float | None, seconds: float) -> HookAnswer:
    return HookAnswer(
        point=point, hook_id=f"h-{seconds}", action=action, at=at(seconds), traffic_percent=percent
    )


class TestEnding:
    def test_a_rolled_back_canary_names_trigger_reason_gate_and_step(self) -> None:
        """A canary whose analysis failed at step 2 ends naming the trigger, the gate, the step and why."""
        assert assess_ending(CANARY) == {
            "outcome": "rolled_back",
            "trigger": "analysis",
            "type": "analysis_failed",
            "reason": "analysis error-rate failed: 2 of 2 measurements failed (limit 1)",
            "gate": "analysis",
            "gate_name": "error-rate",
            "step": "step 2 (50%)",
            "rolled_back": True,
            "rollback_failure": None,
            "ecs_rollback_reason": None,
        }

    def test_a_running_or_succeeded_deployment_has_no_ending(self) -> None:
        """Only a finished deployment that did not succeed says why it ended."""
        assert assess_ending(ended("x", "y", Trigger.ERROR, outcome=None, failure=None)) is None
        assert assess_ending(ended("x", "y", Trigger.ERROR, outcome="succeeded", failure=None)) is None

    def test_a_native_rollback_is_placed_at_its_rollback_hook(self) -> None:
        """For a native strategy the step is the point of the hook we answered ROLLBACK."""
        state = ended(
            "health_gate_failed",
            "PRODUCTION_TRAFFIC_SHIFT: the canary failed its health check",
            Trigger.HEALTH_CHECK,
            strategy="ecs_linear",
            service_deployment=native(
                hook("POST_TEST_TRAFFIC_SHIFT", "CONTINUE", 0.0, 5),
                hook("PRODUCTION_TRAFFIC_SHIFT#2", "ROLLBACK", 40.0, 25),
            ),
        )
        ending = assess_ending(state)
        assert ending is not None
        assert (ending["gate"], ending["step"]) == ("health", "PRODUCTION_TRAFFIC_SHIFT#2")


@pytest.mark.parametrize(
    ("type_", "message", "trigger", "gate", "step"),
    [
        ("alarm_gate_failed", "step 2 (50%): alarm 5xx in ALARM", Trigger.ALARM, "alarm", "step 2 (50%)"),
        ("latency_gate_failed", "bake: latency 900 ms above 500 ms", Trigger.HEALTH_CHECK, "latency", "bake"),
        ("health_gate_failed", "step 1 (10%): unhealthy", Trigger.HEALTH_CHECK, "health", "step 1 (10%)"),
        ("zero_downtime_gate_failed", "step 3: 4 failed", Trigger.HEALTH_CHECK, "zero_downtime", "step 3"),
        ("health_check_failed", "the test listener: status 500", Trigger.HEALTH_CHECK, "health", None),
        ("deadline_exceeded", "not finished within 600 s", Trigger.DEADLINE, "deadline", None),
        ("rollout_failed", "tasks failed to start: exit 1", Trigger.CIRCUIT_BREAKER, None, None),
        ("ecs_rolled_back", "ECS rolled back on 5xx: alarm", Trigger.ALARM, "alarm", None),
        ("ecs_rolled_back", "hook h1 timed out: x", Trigger.DEADLINE, "hook_timeout", None),
        ("build_failed", "step 3: RUN make failed", Trigger.ERROR, None, None),
    ],
    ids=[
        "an alarm gate names its step and leaves the step out of the reason",
        "a latency gate in a blue-green bake names the bake",
        "a health gate at a canary step names the step",
        "dropped requests name the traffic step",
        "a failed verification is a health failure with no step",
        "a deadline has no step",
        "a failed rollout names no gate: its trigger says why",
        "ECS's own rollback on an alarm names the alarm gate",
        "a hook that timed out names the hook timeout",
        "a build failure names no gate and its message is not split",
    ],
)  # fmt: skip
def test_ending_by_failure(
    type_: str, message: str, trigger: Trigger, gate: str | None, step: str | None
) -> None:
    """The failure's type names the gate, a gate failure's prefix names the step, the rest is the reason."""
    ending = assess_ending(ended(type_, message, trigger))
    assert ending is not None
    reason = message.removeprefix(f"{step}: ") if step else message
    assert (ending["gate"], ending["step"], ending["reason"]) == (gate, step, reason)


class TestGatesAndTraffic:
    def test_measurements_are_listed_without_their_query(self) -> None:
        """Each measurement is listed with gate, step, value, verdict and time; the query stays out."""
        listed = list_measurements(CANARY)
        assert [(m["step"], m["value"], m["verdict"]) for m in listed] == [
            ("step 1 (10%)", 0.01, "successful"),
            ("step 2 (50%)", 0.3, "failed"),
            ("step 2 (50%)", 0.35, "failed"),
        ]
        assert set(listed[0]) == {"gate", "step", "value", "verdict", "at"}

    def test_a_value_that_is_not_a_number_is_none(self) -> None:
        """NaN (an empty division in PromQL) is listed as no value, so the API stays valid JSON."""
        state = ended(
            "x", "y", Trigger.ERROR, analysis=[measurement("bake", float("nan"), "inconclusive", 1)]
        )
        assert list_measurements(state)[0]["value"] is None

    def test_listener_steps_come_with_their_weights_and_dropped_requests(self) -> None:
        """Each listener change is a step with its weights; the restore ends the list."""
        steps = list_traffic_steps(CANARY, CANARY_EVENTS)
        assert [(s["label"], s["weights"]) for s in steps] == [
            ("step 1 (10%)", {"blue": 90, "green": 10}),
            ("step 2 (50%)", {"blue": 50, "green": 50}),
            ("restored", {}),
        ]
        assert (steps[0]["requests"], steps[0]["failures"]) == (240, 0)
        assert "requests" not in steps[1]

    def test_native_steps_are_its_hooks(self) -> None:
        """A native deployment's steps are its answered hooks: point, traffic share, action, time."""
        state = ended(
            "ecs_rolled_back",
            "ECS rolled the deployment back: x",
            Trigger.ECS_ROLLBACK,
            service_deployment=native(hook("POST_TEST_TRAFFIC_SHIFT", "CONTINUE", 0.0, 5)),
        )
        assert list_traffic_steps(state, CANARY_EVENTS) == [
            {
                "point": "POST_TEST_TRAFFIC_SHIFT",
                "traffic_percent": 0.0,
                "action": "CONTINUE",
                "at": at(5).isoformat(),
            }
        ]


class TestSummary:
    def test_a_native_summary_shows_stages_and_status_but_no_arn(self) -> None:
        """ECS's deployment is summarized by status, reasons and lifecycle stages; its ARN stays out."""
        state = ended(
            "ecs_rolled_back",
            "ECS rolled the deployment back: x",
            Trigger.ECS_ROLLBACK,
            service_deployment=native(),
        )
        summary = summarize_deployment(state, at(100))
        shown = summary["service_deployment"]
        assert shown["status"] == "ROLLBACK_SUCCESSFUL"
        assert [s["stage"] for s in shown["lifecycle_stages"]] == [
            "PRE_SCALE_UP",
            "PRODUCTION_TRAFFIC_SHIFT",
            "ROLLBACK_IN_PROGRESS",
        ]
        assert "123456789012" not in repr(summary)

    def test_no_secret_of_the_request_events_or_queries_is_shown(self) -> None:
        """Build args, build output lines and analysis queries never reach the summary."""
        summary = summarize_deployment(CANARY, at(100), CANARY_EVENTS)
        assert "s3cret" not in repr(summary)
        assert summary["ended_because"]["step"] == "step 2 (50%)"
        assert len(summary["gates"]) == 3
        assert len(summary["traffic_steps"]) == 3
