"""When to poll ECS again, as a table."""

from __future__ import annotations

import pytest

from deploy_agent.core.polling import PollPolicy, decide_quiet_streak, expected_duration, plan_next_poll

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


E = PollPolicy(fast=0.5, slow=5.0, burst_window=2.0, growth=2.0, budget=100, safety=15.0)


@pytest.mark.parametrize(
    ("since_change", "quiet", "calls", "expected", "wait"),
    [
        (0.0, 0, 1, None, 15.0),
        (0.0, 0, 9, None, 15.0),
        (0.0, 0, 3, 20.0, 15.0),
        (15.0, 0, 5, None, 15.0),
        (40.0, 0, 5, None, 15.0),
        (2.0, 1, 5, None, 0.5),
        (2.5, 2, 6, None, 1.0),
        (3.5, 3, 7, None, 2.0),
        (14.0, 6, 10, None, 15.0),
        (0.0, 0, 100, None, 20.0),
    ],
    ids=[
        "right after the update it waits for an event, not for a fast poll",
        "a look that saw a change waits for the next event",
        "an expected end is not aimed at: the end sends its own event",
        "the safety poll that saw nothing waits the safety interval again",
        "a long quiet stretch stays at the safety interval",
        "a woken look that saw nothing looks again at the fast poll",
        "a second woken look that saw nothing doubles the wait",
        "a third doubles it again",
        "the woken backoff never exceeds the safety interval",
        "a spent budget slows to four times slow",
    ],
)
def test_plan_next_poll_with_events(
    since_change: float, quiet: int, calls: int, expected: float | None, wait: float
) -> None:
    """With ECS's events waking the stage, polling is the safety net (``PollPolicy.safety``)."""
    assert plan_next_poll(E, 10.0, since_change, quiet, calls, expected) == pytest.approx(wait)


@pytest.mark.parametrize(
    ("streak", "changed", "woken", "after"),
    [
        (0, True, True, 0),
        (0, False, True, 1),
        (0, False, False, 0),
        (1, False, False, 2),
        (2, False, True, 3),
        (3, True, False, 0),
        (6, False, False, 0),
        (6, False, True, 1),
    ],
    ids=[
        "a look that saw the change ends any streak",
        "a woken look that saw nothing starts a backoff",
        "a look at its own safety time saw nothing owed: no backoff",
        "within a backoff a look at its own time that still sees nothing backs off further",
        "so does a woken one",
        "the change seen at last ends the backoff",
        "a backoff grown to the safety interval is over: its look owed nothing",
        "a new wake after it starts a new backoff (it used to wait the safety interval: a missed verdict)",
    ],
)
def test_decide_quiet_streak(streak: int, changed: bool, woken: bool, after: int) -> None:
    """The woken looks in a row that saw nothing, with events (``PollPolicy.safety``) 15 s, fast 0.5 s."""
    assert decide_quiet_streak(streak, changed, woken, E) == after


@pytest.mark.parametrize(
    ("history", "expected"),
    [([], None), ([4.0], 4.0), ([4.0, 6.0], 5.0), ([9.0, 3.0, 4.0], 4.0), ([0.0, -1.0], None)],
    ids=["no history", "one rollout", "two average", "median of three", "nonsense ignored"],
)
def test_expected_duration(history: list[float], expected: float | None) -> None:
    assert expected_duration(history) == expected
