"""Which AWS failures a step may simply try again, and how long it waits before it does."""

from __future__ import annotations

import pytest

from deploy_agent.core.errors import (
    AwsError,
    AwsNotFound,
    AwsThrottled,
    DeployError,
    RolloutFailed,
    is_transient,
)
from deploy_agent.core.polling import plan_retry_delay

CASES: list[tuple[str, DeployError, bool]] = [
    (
        "a throttled read is retried",
        AwsThrottled("x", operation="DescribeServices", code="ThrottlingException"),
        True,
    ),
    (
        "a throttled write is retried: AWS refused it unprocessed",
        AwsThrottled("x", operation="UpdateService"),
        True,
    ),
    ("a 5xx on a read is retried", AwsError("x", operation="DescribeServices", code="ServerException"), True),
    (
        "a dropped connection on a read is retried",
        AwsError("x", operation="ListTasks", code="ReadTimeoutError"),
        True,
    ),
    (
        "a 5xx on UpdateService is retried: its effect is checked before it is sent again",
        AwsError("x", operation="UpdateService", code="ServerException"),
        True,
    ),
    (
        "a 5xx on RegisterTaskDefinition is not retried: its effect is unknown",
        AwsError("x", operation="RegisterTaskDefinition", code="ServerException"),
        False,
    ),
    (
        "a client error is not retried",
        AwsError("x", operation="DescribeServices", code="AccessDeniedException"),
        False,
    ),
    (
        "a missing resource is not retried",
        AwsNotFound("x", operation="DescribeServices", code="MISSING"),
        False,
    ),
    ("a rollout failure is not an AWS hiccup", RolloutFailed("x"), False),
]


@pytest.mark.parametrize(("error", "transient"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_is_transient(error: DeployError, transient: bool) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [(1, 1.0, 1.0), (2, 1.0, 2.0), (3, 1.0, 4.0), (3, 0.0, 2.0), (10, 1.0, 20.0), (10, 0.0, 10.0)],
    ids=[
        "the first retry waits the base",
        "each failure in a row doubles the wait",
        "the third waits four times the base",
        "jitter takes at most half away",
        "the cap bounds a long streak",
        "jitter applies under the cap too",
    ],
)
def test_plan_retry_delay(attempt: int, jitter: float, expected: float) -> None:
    assert plan_retry_delay(attempt, 1.0, 20.0, jitter) == pytest.approx(expected)
