"""When to poll ECS again, as a table."""

from __future__ import annotations

import pytest

from deploy_agent.core.polling import PollPolicy, expected_duration, plan_next_poll

P = PollPolicy(fast=0.5, slow=5.0, burst_window=2.0, growth=2.0, budget=100)


@pytest.mark.parametrize(
    ("elapsed", "since_change", "quiet", "calls", "expected", "wait"),
    [
        (0.0, 0.0, 0, 1, None, 0.5),
        (10.0, 1.0, 0, 5, None, 0.5),
        (10.0, 3.0, 1, 5, None, 1.0),
        (10.0, 3.0, 2, 5, None, 2.0),
        (10.0, 30.0, 6, 5, None, 5.0),
        (1.0, 3.0, 1, 2, 9.0, 5.0),
        (6.0, 6.0, 1, 3, 9.0, 2.5),
        (8.6, 8.6, 2, 4, 9.0, 2.0),
        (3.0, 3.0, 0, 100, 9.0, 20.0),
        (0.0, 0.0, 0, 1, 9.0, 0.5),
    ],
    ids=[
        "right after the update it polls fast",
        "a recent change keeps it fast",
        "one quiet look doubles the wait",
        "two quiet looks double it again",
        "a long quiet stretch stops at slow",
        "an expected end far away waits at most slow",
        "an expected end near aims just before it",
        "past the aim it backs off as usual",
        "a spent budget slows to four times slow",
        "the first look after the update stays fast even with history",
    ],
)
def test_plan_next_poll(
    elapsed: float, since_change: float, quiet: int, calls: int, expected: float | None, wait: float
) -> None:
    assert plan_next_poll(P, elapsed, since_change, quiet, calls, expected) == pytest.approx(wait)


@pytest.mark.parametrize(
    ("history", "expected"),
    [([], None), ([4.0], 4.0), ([4.0, 6.0], 5.0), ([9.0, 3.0, 4.0], 4.0), ([0.0, -1.0], None)],
    ids=["no history", "one rollout", "two average", "median of three", "nonsense ignored"],
)
def test_expected_duration(history: list[float], expected: float | None) -> None:
    assert expected_duration(history) == expected
