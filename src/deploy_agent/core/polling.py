"""When to look at ECS again: quick just after a change, slower while nothing moves.

A rollout's observable changes come in bursts (tasks start, targets turn healthy, old tasks drain,
then COMPLETED), separated by quiet stretches (image pulls, start-up, health-check grace). Polling
fast right after a change catches the burst's end with little delay; backing off while nothing moves
spends few calls; and when earlier rollouts of the same service say how long they take, the first
look is aimed just before that moment. A budget caps the calls one deployment may spend.

With ECS's events or the cluster watcher (``safety`` set) the news says when something moved: it
wakes the waiting stage, so polling is only a safety net for news lost or late. A look that saw a
change waits ``safety``. A look that saw nothing although it came before its wait was up was woken
by news that DescribeServices does not show yet (ECS is eventually consistent, and the worker's
snapshot of the service may be a moment old): it looks again soon, backing off from ``fast``
(``decide_quiet_streak``), and the backoff goes on until a look sees the change or reaches ``safety``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PollPolicy:
    """Seconds between looks: ``fast`` right after a change, growing to ``slow`` while quiet."""

    fast: float = 0.5
    slow: float = 5.0
    #: a change less than this long ago keeps polling fast
    burst_window: float = 2.0
    growth: float = 2.0
    #: most describe calls one deployment may make; past it, poll at 4x ``slow``
    budget: int = 600
    #: with ECS's events waking the stage: the longest wait while nothing moves (None: no events)
    safety: float | None = None


#: a look that comes this long before its wait was up was woken (a look at its own time comes late,
#: never early; the margin covers clocks of two hosts that differ a little)
WOKEN_MARGIN_SECONDS = 0.5


def decide_quiet_streak(streak: int, changed: bool, woken: bool, policy: PollPolicy) -> int:
    """Return the woken looks in a row that saw nothing, after this look (woken by news, or not).

    A look that saw a change ends the streak. Within a backoff (its last wait shorter than
    ``safety``) each look that still sees nothing backs off further, woken or not: the news that
    woke the first is still owed. Otherwise a woken look that saw nothing starts a backoff, and a
    look at its own safety time starts none (no news was owed).
    """
    assert policy.safety is not None
    if changed:
        return 0
    if streak > 0 and _woken_backoff(policy, streak) < policy.safety:
        return streak + 1
    return 1 if woken else 0


def _woken_backoff(policy: PollPolicy, streak: int) -> float:
    """Return the wait after the ``streak``-th woken look in a row that saw nothing (uncapped)."""
    return min(policy.fast, policy.slow) * policy.growth ** (streak - 1)


def plan_next_poll(
    policy: PollPolicy,
    elapsed: float,
    since_change: float,
    quiet_polls: int,
    calls: int,
    expected: float | None = None,
) -> float:
    """Return the seconds to wait before the next look.

    ``elapsed``: since UpdateService; ``since_change``: since the last observed change of counts or
    state; ``quiet_polls``: looks in a row that saw no change; ``calls``: looks made so far;
    ``expected``: how long earlier rollouts of this service took (None when unknown).
    """
    fast = min(policy.fast, policy.slow)
    if calls >= policy.budget:
        return max(policy.slow * 4, policy.safety or 0.0)
    if policy.safety is not None:
        # ``quiet_polls``: here the streak of woken looks that saw nothing (``decide_quiet_streak``)
        return policy.safety if quiet_polls == 0 else min(policy.safety, _woken_backoff(policy, quiet_polls))
    if since_change < policy.burst_window:
        return fast
    if expected is not None and elapsed < expected - fast:
        # Aim just before the expected end, but never sleep longer than ``slow``: a failure can come early.
        return max(fast, min(policy.slow, expected - fast - elapsed))
    return min(policy.slow, fast * policy.growth ** max(0, quiet_polls))


def expected_duration(history: Sequence[float]) -> float | None:
    """Return the median of earlier rollout durations (None without history)."""
    values = sorted(v for v in history if v > 0)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def plan_retry_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Return the wait before retrying a transient AWS failure: exponential, capped, jittered.

    ``attempt`` counts the failures in a row (1 for the first); ``jitter`` in [0, 1) spreads the
    waits of many deployments throttled at once ("full jitter" halves at most: the wait stays at
    least half the exponential step), as AWS's retry guidance recommends
    (docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
    """
    step = min(cap, base * 2.0 ** max(0, attempt - 1))
    return max(base / 2, step * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0)))
