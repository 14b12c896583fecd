"""The terminal outcome and whether we must roll back, as tables."""

from __future__ import annotations

import pytest

from deploy_agent.core.outcome import Failure, Phase, Trigger, decide_outcome, needs_rollback, plan_stages

CB = Failure("rollout_failed", "circuit breaker", Trigger.CIRCUIT_BREAKER)
LATE = Failure("deadline_exceeded", "too slow", Trigger.DEADLINE)
BUILD = Failure("build_failed", "RUN exit 3", Trigger.ERROR)
HEALTH = Failure("health_check_failed", "500", Trigger.HEALTH_CHECK)


@pytest.mark.parametrize(
    ("failure", "touched", "rolled_back", "rollback_failed", "outcome"),
    [
        (None, True, False, False, "succeeded"),
        (BUILD, False, False, False, "failed"),
        (CB, True, True, False, "rolled_back"),
        (HEALTH, True, True, False, "rolled_back"),
        (HEALTH, True, False, False, "failed"),
        (HEALTH, True, False, True, "failed"),
        (LATE, True, True, False, "timed_out"),
        (LATE, False, False, False, "timed_out"),
    ],
    ids=[
        "no failure succeeds",
        "a failure before the service was touched is failed",
        "a circuit-breaker failure that was undone is rolled back",
        "a health failure that was undone is rolled back",
        "a failure left in place (rollback disabled) is failed",
        "a rollback that itself failed is failed",
        "the deadline is timed out even when rolled back",
        "the deadline before any update is timed out",
    ],
)
def test_decide_outcome(
    failure: Failure | None, touched: bool, rolled_back: bool, rollback_failed: bool, outcome: str
) -> None:
    assert decide_outcome(failure, touched, rolled_back, rollback_failed) == outcome


@pytest.mark.parametrize(
    ("phase", "enabled", "ecs_rolled_back", "expected"),
    [
        (Phase.UPDATING, True, False, True),
        (Phase.VERIFYING, True, False, True),
        (Phase.REGISTERED, True, False, False),
        (Phase.PUSHED, True, False, False),
        (Phase.UPDATING, False, False, False),
        (Phase.UPDATING, True, True, False),
    ],
    ids=[
        "a failure while updating needs a rollback",
        "a failure while verifying needs a rollback",
        "a registered but unused revision needs none",
        "a pushed image needs none",
        "rollback disabled means none",
        "ECS already rolled back means none from us",
    ],
)
def test_needs_rollback(phase: Phase, enabled: bool, ecs_rolled_back: bool, expected: bool) -> None:
    assert needs_rollback(phase, enabled, ecs_rolled_back) is expected


@pytest.mark.parametrize(
    ("request_", "run", "idle"),
    [
        (
            {"image": {"uri": "r/x@sha256:1"}},
            ["register", "deploy", "rollback", "finalize"],
            ["build", "push", "healthcheck"],
        ),
        (
            {
                "build": {"context": "web"},
                "image": {"repository": "web"},
                "health_check": {"url": "http://x/h"},
            },
            ["build", "push", "register", "deploy", "healthcheck", "rollback", "finalize"],
            [],
        ),
        (
            {"image": {"uri": "r/x:1"}, "health_check": {"url": "http://x/h"}},
            ["register", "deploy", "healthcheck", "rollback", "finalize"],
            ["build", "push"],
        ),
    ],
    ids=[
        "a prebuilt image without a health URL runs only what it needs",
        "a build with a health URL runs every stage",
        "a prebuilt image with a health URL still checks health",
    ],
)
def test_plan_stages(request_: dict[str, object], run: list[str], idle: list[str]) -> None:
    stages = ["build", "push", "register", "deploy", "healthcheck", "rollback", "finalize"]
    assert plan_stages(stages, request_) == (run, idle)
