"""The terminal outcome and whether we must roll back, as tables.

(Which stages a chain runs is ``core.orchestration.plan_chain``: tests/core/test_orchestration.py.)
"""

from __future__ import annotations

import pytest

from deploy_agent.core.outcome import (
    APPROVAL_TIMED_OUT,
    DENIED,
    Failure,
    Phase,
    Trigger,
    decide_outcome,
    needs_rollback,
)

CB = Failure("rollout_failed", "circuit breaker", Trigger.CIRCUIT_BREAKER)
LATE = Failure("deadline_exceeded", "too slow", Trigger.DEADLINE)
BUILD = Failure("build_failed", "RUN exit 3", Trigger.ERROR)
HEALTH = Failure("health_check_failed", "500", Trigger.HEALTH_CHECK)
REJECTED = Failure("preflight_failed", "not ours", Trigger.ERROR)
NO = Failure(DENIED, "denied by ana: not today", Trigger.ERROR)
NOBODY = Failure(APPROVAL_TIMED_OUT, "nobody approved", Trigger.DEADLINE)
NEWER = Failure("superseded", "a newer deployment (d-2) was requested", Trigger.ERROR)


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
        (REJECTED, False, False, False, "rejected"),
        (NO, False, False, False, "denied"),
        (NO, True, True, False, "denied"),
        (NOBODY, False, False, False, "timed_out"),
        (NEWER, False, False, False, "superseded"),
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
        "a preflight refusal is rejected",
        "a denial is denied",
        "a denial of a traffic strategy that removed its new service is still denied",
        "an approval nobody gave in time is timed out",
        "a newer deployment of the service makes it superseded",
    ],
)
def test_decide_outcome(
    failure: Failure | None, touched: bool, rolled_back: bool, rollback_failed: bool, outcome: str
) -> None:
    """The outcome follows from the failure, whether the service was touched and how the undo went."""
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
    """We put the previous revision back only once the service was touched, and only if nobody did."""
    assert needs_rollback(phase, enabled, ecs_rolled_back) is expected
