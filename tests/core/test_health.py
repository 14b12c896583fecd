"""assess_health and assess_response: pure verdicts, as tables."""

from __future__ import annotations

import pytest

from deploy_agent.core.health import HealthVerdict, Probe, assess_health, assess_response


def _probes(pattern: str) -> list[Probe]:
    """'SSF' -> success, success, failure (oldest first)."""
    return [
        Probe(ok=c == "S", status=200 if c == "S" else 500, latency_ms=1.0, error=None, at=float(i))
        for i, c in enumerate(pattern)
    ]


@pytest.mark.parametrize(
    ("pattern", "healthy", "unhealthy", "expected"),
    [
        pytest.param("", 3, 3, "pending", id="no probes yet is pending"),
        pytest.param("S", 3, 3, "pending", id="one success of three needed is pending"),
        pytest.param("SS", 3, 3, "pending", id="two successes of three needed is pending"),
        pytest.param("SSS", 3, 3, "healthy", id="three consecutive successes is healthy"),
        pytest.param("S", 1, 3, "healthy", id="a threshold of one makes one success healthy"),
        pytest.param("F", 3, 1, "unhealthy", id="a threshold of one makes one failure unhealthy"),
        pytest.param("FF", 3, 3, "pending", id="two failures of three needed is pending"),
        pytest.param("FFF", 3, 3, "unhealthy", id="three consecutive failures is unhealthy"),
        pytest.param("SSFSS", 3, 3, "pending", id="a failure resets the run of successes"),
        pytest.param("FFSFF", 3, 3, "pending", id="a success resets the run of failures"),
        pytest.param("SFSFSFSF", 2, 2, "pending", id="flapping never reaches either verdict"),
        pytest.param("SSSF", 3, 3, "healthy", id="one failure does not undo healthy"),
        pytest.param("SSSFFF", 3, 3, "unhealthy", id="enough failures after healthy make it unhealthy"),
        pytest.param("FFFS", 3, 3, "unhealthy", id="one success does not undo unhealthy"),
        pytest.param("FFFSSS", 3, 3, "healthy", id="enough successes after unhealthy make it healthy"),
        pytest.param("FFSSSSS", 5, 2, "healthy", id="recovering takes the healthy threshold"),
        pytest.param(
            "SSSSSF", 10, 1, "unhealthy", id="a strict unhealthy threshold fails on the first failure"
        ),
    ],
)
def test_assess_health(pattern: str, healthy: int, unhealthy: int, expected: HealthVerdict) -> None:
    assert assess_health(_probes(pattern), healthy, unhealthy) == expected


@pytest.mark.parametrize(("healthy", "unhealthy"), [(0, 3), (3, 0), (-1, 1)])
def test_thresholds_below_one_are_refused(healthy: int, unhealthy: int) -> None:
    """A threshold of zero or less is a programming error, not a verdict."""
    with pytest.raises(ValueError, match="at least 1"):
        assess_health([], healthy, unhealthy)


@pytest.mark.parametrize(
    ("status", "latency_ms", "expected_status", "max_latency_ms", "problem"),
    [
        pytest.param(200, 10.0, 200, None, None, id="the expected status with no latency limit passes"),
        pytest.param(500, 10.0, 200, None, "status 500, expected 200", id="another status fails"),
        pytest.param(204, 10.0, 204, None, None, id="a non-200 expected status passes"),
        pytest.param(200, 150.0, 200, 100, "latency 150 ms above 100 ms", id="too slow fails"),
        pytest.param(200, 100.0, 200, 100, None, id="exactly at the latency limit passes"),
        pytest.param(
            500, 150.0, 200, 100, "status 500, expected 200", id="the status is reported before latency"
        ),
    ],
)
def test_assess_response(
    status: int, latency_ms: float, expected_status: int, max_latency_ms: int | None, problem: str | None
) -> None:
    assert assess_response(status, latency_ms, expected_status, max_latency_ms) == problem
