"""Health-check verdicts: one probe's result, and the verdict over a run of probes. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

HealthVerdict = Literal["healthy", "unhealthy", "pending"]


@dataclass(frozen=True)
class Probe:
    """One HTTP health probe: ``ok`` is the judgement, the rest says why and when."""

    ok: bool
    status: int | None
    latency_ms: float
    error: str | None
    at: float  # wall-clock seconds (time.time()) when the probe was sent


class ProbeLike(Protocol):
    @property
    def ok(self) -> bool: ...


def assess_response(
    status: int, latency_ms: float, expected_status: int, max_latency_ms: int | None = None
) -> str | None:
    """Return what is wrong with an HTTP answer, or None when it passes."""
    if status != expected_status:
        return f"status {status}, expected {expected_status}"
    if max_latency_ms is not None and latency_ms > max_latency_ms:
        return f"latency {latency_ms:.0f} ms above {max_latency_ms} ms"
    return None


def assess_health(
    probes: Sequence[ProbeLike], healthy_threshold: int, unhealthy_threshold: int
) -> HealthVerdict:
    """Return the verdict after the probes, oldest first, the way a load balancer judges a target.

    The verdict starts ``pending``; ``healthy_threshold`` consecutive successes make it
    ``healthy`` and ``unhealthy_threshold`` consecutive failures make it ``unhealthy``. A shorter
    run of the other kind does not undo a verdict already reached.
    """
    if healthy_threshold < 1 or unhealthy_threshold < 1:
        raise ValueError("health thresholds must be at least 1")
    verdict: HealthVerdict = "pending"
    successes = failures = 0
    for probe in probes:
        if probe.ok:
            successes, failures = successes + 1, 0
        else:
            successes, failures = 0, failures + 1
        if successes >= healthy_threshold:
            verdict = "healthy"
        elif failures >= unhealthy_threshold:
            verdict = "unhealthy"
    return verdict
