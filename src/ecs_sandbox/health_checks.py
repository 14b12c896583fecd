"""One target's health checks as ELB makes them: the HTTP probe, the matcher, the state by thresholds.

The checker in ``target_health`` runs ``probe`` and moves each ``Target`` by these pure decisions
(``decide_state``, ``decide_due``, ``decide_drain_seconds``); the states and ELB's rules behind them
are described in its docstring.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass, field
from typing import Any

from .target_group_settings import AWS_DEFAULT_DRAIN_SECONDS


@dataclass
class Target:
    """One registered target: where it really listens and what its checks have seen."""

    target_group_arn: str
    target_id: str
    port: int
    path: str
    matcher: str
    registered_at: float = field(default_factory=time.monotonic)
    state: str = "initial"
    successes: int = 0
    failures: int = 0
    last_failure: str = ""
    drain_until: float | None = None  # set once deregistered
    probed: bool = True  # False: a virtual task's target, healthy without checks and sent no traffic
    grace_until: float = 0.0  # ECS ignores this target's unhealthy verdicts until then (monotonic)
    next_check_at: float = 0.0  # when its group's own interval is due (configured timing only)
    in_flight: bool = False  # a probe of it is under way (configured timing only)

    @property
    def deregistered(self) -> bool:
        """Return whether the target was deregistered (it is draining or about to be forgotten)."""
        return self.drain_until is not None


def matches(status: int, matcher: str) -> bool:
    """Return whether an HTTP status satisfies an ELB matcher such as "200", "200,302" or "200-299"."""
    for part in matcher.split(","):
        low, _, high = part.strip().partition("-")
        if low and int(low) <= status <= int(high or low):
            return True
    return False


def probe(port: int, path: str, matcher: str, timeout: float) -> str:
    """Return "" when GET 127.0.0.1:port/path passes, else the ELB-style failure reason."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path or "/")
        status = connection.getresponse().status
    except TimeoutError:
        return "Request timed out"
    except OSError:
        return "Connection refused"
    finally:
        connection.close()
    return "" if matches(status, matcher) else f"Health checks failed with these codes: [{status}]"


def decide_drain_seconds(attribute: Any, default_seconds: float, max_seconds: float) -> float:
    """Return how long a deregistered target drains, from the target group's delay attribute."""
    try:
        seconds = float(attribute)
    except (TypeError, ValueError):
        seconds = AWS_DEFAULT_DRAIN_SECONDS
    if seconds == AWS_DEFAULT_DRAIN_SECONDS:
        seconds = default_seconds  # nobody chose a delay: the sandbox's own default
    return max(0.0, min(seconds, max_seconds))


def decide_state(target: Target, failure: str, healthy_threshold: int, unhealthy_threshold: int) -> None:
    """Move a target's counters and state by one check's result (ELB's consecutive thresholds)."""
    if not failure:
        target.successes, target.failures = target.successes + 1, 0
        if target.successes >= healthy_threshold:
            target.state = "healthy"
        return
    target.successes, target.failures, target.last_failure = 0, target.failures + 1, failure
    if target.failures >= unhealthy_threshold:
        target.state = "unhealthy"


def decide_due(target: Target, interval: float, in_use: bool, now: float) -> bool:
    """Return whether a target of a group with its own ``interval`` is due for a check ``now``.

    ELB checks no target of a group that no load balancer uses (the target is "unused"); once one
    does, the target starts over from "initial".
    """
    if not in_use:
        target.state, target.successes, target.failures = "unused", 0, 0
        target.next_check_at = now + interval
        return False
    if target.state == "unused":
        target.state = "initial"
    return now >= target.next_check_at
