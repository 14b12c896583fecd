"""Verdicts on our ECS deployment, from DescribeServices shapes."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_agent.core.rollout import RolloutState, assess_rollout, is_settled_on

OURS = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2"
OLD = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"


def dep(id_: str, td: str, status: str, rollout: str, reason: str = "", **counts: int) -> dict[str, Any]:
    return {
        "id": id_,
        "taskDefinition": td,
        "status": status,
        "rolloutState": rollout,
        "rolloutStateReason": reason,
        "runningCount": counts.get("running", 0),
        "desiredCount": counts.get("desired", 2),
        "failedTasks": counts.get("failed", 0),
    }


CASES: list[tuple[str, list[dict[str, Any]], str | None, RolloutState, bool]] = [
    (
        "our deployment not visible yet is pending",
        [dep("d1", OLD, "PRIMARY", "COMPLETED")],
        None,
        RolloutState.PENDING,
        False,
    ),
    (
        "found by task definition before its id is known",
        [dep("d2", OURS, "PRIMARY", "IN_PROGRESS"), dep("d1", OLD, "ACTIVE", "COMPLETED")],
        None,
        RolloutState.IN_PROGRESS,
        False,
    ),
    (
        "completed primary is completed",
        [dep("d2", OURS, "PRIMARY", "COMPLETED", running=2)],
        "d2",
        RolloutState.COMPLETED,
        False,
    ),
    (
        "failed without ECS rollback is failed",
        [dep("d2", OURS, "PRIMARY", "FAILED", "circuit breaker")],
        "d2",
        RolloutState.FAILED,
        False,
    ),
    (
        "failed while ECS rolls back is failed and says so",
        [
            dep(
                "d3",
                OLD,
                "PRIMARY",
                "IN_PROGRESS",
                "ECS deployment circuit breaker: rolling back to deploymentId d1",
            ),
            dep("d2", OURS, "ACTIVE", "FAILED", "tasks failed to start"),
        ],
        "d2",
        RolloutState.FAILED,
        True,
    ),
    (
        "ours gone and an ECS rollback primary means ECS rolled back",
        [
            dep(
                "d3",
                OLD,
                "PRIMARY",
                "COMPLETED",
                "ECS deployment circuit breaker: rolling back to deploymentId d1",
            )
        ],
        "d2",
        RolloutState.FAILED,
        True,
    ),
    (
        "ours gone under a plain new primary means replaced",
        [dep("d9", OLD, "PRIMARY", "IN_PROGRESS")],
        "d2",
        RolloutState.REPLACED,
        False,
    ),
    (
        "ours demoted to active while in progress means replaced",
        [dep("d9", OLD, "PRIMARY", "IN_PROGRESS"), dep("d2", OURS, "ACTIVE", "IN_PROGRESS")],
        "d2",
        RolloutState.REPLACED,
        False,
    ),
    (
        "a completed deployment that is not primary is not ours to claim",
        [dep("d2", OURS, "ACTIVE", "COMPLETED"), dep("d9", OLD, "PRIMARY", "IN_PROGRESS")],
        "d2",
        RolloutState.REPLACED,
        False,
    ),
    (
        "in progress with failures stays in progress",
        [dep("d2", OURS, "PRIMARY", "IN_PROGRESS", failed=2)],
        "d2",
        RolloutState.IN_PROGRESS,
        False,
    ),
]


@pytest.mark.parametrize(
    ("deployments", "known_id", "expected", "ecs_rolled_back"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_assess_rollout(
    deployments: list[dict[str, Any]], known_id: str | None, expected: RolloutState, ecs_rolled_back: bool
) -> None:
    verdict = assess_rollout({"deployments": deployments}, known_id, OURS)
    assert verdict.state is expected
    assert verdict.ecs_rolled_back is ecs_rolled_back


def test_counts_are_read_from_our_deployment() -> None:
    """The verdict reports our deployment's running, desired and failed counts."""
    verdict = assess_rollout(
        {"deployments": [dep("d2", OURS, "PRIMARY", "IN_PROGRESS", running=1, failed=3)]}, "d2", OURS
    )
    assert (verdict.running, verdict.desired, verdict.failed_tasks) == (1, 2, 3)


@pytest.mark.parametrize(
    ("deployments", "settled"),
    [
        ([dep("d1", OLD, "PRIMARY", "COMPLETED")], True),
        ([dep("d1", OLD, "PRIMARY", "IN_PROGRESS")], False),
        ([dep("d1", OLD, "PRIMARY", "COMPLETED"), dep("d2", OURS, "ACTIVE", "FAILED")], False),
        ([dep("d2", OURS, "PRIMARY", "COMPLETED")], False),
    ],
    ids=[
        "completed alone is settled",
        "in progress is not settled",
        "old tasks still draining is not settled",
        "another revision is not settled",
    ],
)
def test_is_settled_on(deployments: list[dict[str, Any]], settled: bool) -> None:
    assert is_settled_on({"deployments": deployments}, OLD) is settled


ROLLBACK_REASON = "ECS deployment circuit breaker: rolling back to deploymentId d1."
BREAKER_ON = {"deploymentCircuitBreaker": {"enable": True, "rollback": True}}

#: (name, deployments, confirmed id, UpdateService hint, earlier ids, config, state, ECS rolled back)
REAL_CASES: list[
    tuple[str, list[dict[str, Any]], str | None, str | None, list[str], dict[str, Any], RolloutState, bool]
] = [
    (
        "the long window: ECS's rollback is primary while ours is still active and in progress",
        [
            dep("d3", OLD, "PRIMARY", "IN_PROGRESS", ROLLBACK_REASON),
            dep("d2", OURS, "ACTIVE", "IN_PROGRESS", "ECS deployment d2 in progress.", failed=3),
        ],
        "d2",
        None,
        ["d1"],
        BREAKER_ON,
        RolloutState.FAILED,
        True,
    ),
    (
        "the long window with ours draining is still ECS's rollback",
        [
            dep("d3", OLD, "PRIMARY", "IN_PROGRESS", ROLLBACK_REASON),
            {**dep("d2", OURS, "DRAINING", "IN_PROGRESS"), "status": "DRAINING"},
        ],
        None,
        "d2",
        ["d1"],
        BREAKER_ON,
        RolloutState.FAILED,
        True,
    ),
    (
        "a rollback seen late: ours failed and gone, the rollback completed",
        [dep("d3", OLD, "PRIMARY", "COMPLETED", "ECS deployment d3 completed.", running=2)],
        "d2",
        None,
        ["d1"],
        BREAKER_ON,
        RolloutState.FAILED,
        True,
    ),
    (
        "a rollback done before our first look: ours never seen, a new deployment of the old revision",
        [dep("d3", OLD, "PRIMARY", "COMPLETED", "ECS deployment d3 completed.", running=2)],
        None,
        "d2",
        ["d1"],
        BREAKER_ON,
        RolloutState.FAILED,
        True,
    ),
    (
        "a rollback in progress before our first look, ours id unknown but earlier deployments known",
        [dep("d3", OLD, "PRIMARY", "IN_PROGRESS", ROLLBACK_REASON)],
        None,
        None,
        ["d1"],
        BREAKER_ON,
        RolloutState.FAILED,
        True,
    ),
    (
        "a stale read from before our update is pending, not a rollback",
        [dep("d1", OLD, "PRIMARY", "COMPLETED", running=2)],
        None,
        "d2",
        ["d1"],
        BREAKER_ON,
        RolloutState.PENDING,
        False,
    ),
    (
        "a stale read after ours was seen is still pending",
        [dep("d1", OLD, "PRIMARY", "COMPLETED", running=2)],
        "d2",
        None,
        ["d1"],
        BREAKER_ON,
        RolloutState.PENDING,
        False,
    ),
    (
        "the hint finds ours in progress",
        [dep("d2", OURS, "PRIMARY", "IN_PROGRESS"), dep("d1", OLD, "ACTIVE", "COMPLETED")],
        None,
        "d2",
        ["d1"],
        BREAKER_ON,
        RolloutState.IN_PROGRESS,
        False,
    ),
    (
        "failed while still primary with ECS rollback on: ECS is about to roll back",
        [
            dep("d2", OURS, "PRIMARY", "FAILED", "tasks failed to start"),
            dep("d1", OLD, "ACTIVE", "COMPLETED"),
        ],
        "d2",
        None,
        ["d1"],
        BREAKER_ON,
        RolloutState.FAILED,
        True,
    ),
    (
        "failed with the service's rollback off: ours to undo",
        [
            dep("d2", OURS, "PRIMARY", "FAILED", "tasks failed to start"),
            dep("d1", OLD, "ACTIVE", "COMPLETED"),
        ],
        "d2",
        None,
        ["d1"],
        {"deploymentCircuitBreaker": {"enable": True, "rollback": False}},
        RolloutState.FAILED,
        False,
    ),
    (
        "another user's deployment of a third revision replaced ours",
        [dep("d9", "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7", "PRIMARY", "IN_PROGRESS")],
        None,
        "d2",
        ["d1"],
        BREAKER_ON,
        RolloutState.REPLACED,
        False,
    ),
]


@pytest.mark.parametrize(
    ("deployments", "known_id", "hint", "earlier", "config", "expected", "ecs_rolled_back"),
    [c[1:] for c in REAL_CASES],
    ids=[c[0] for c in REAL_CASES],
)
def test_assess_rollout_in_real_shapes(
    deployments: list[dict[str, Any]],
    known_id: str | None,
    hint: str | None,
    earlier: list[str],
    config: dict[str, Any],
    expected: RolloutState,
    ecs_rolled_back: bool,
) -> None:
    service = {"deployments": deployments, "deploymentConfiguration": config}
    verdict = assess_rollout(service, known_id, OURS, OLD, hint=hint, earlier_ids=earlier)
    assert verdict.state is expected
    assert verdict.ecs_rolled_back is ecs_rolled_back
