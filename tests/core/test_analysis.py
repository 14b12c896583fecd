"""Prometheus analysis as pure decisions: conditions, one measurement's verdict, a gate's phase."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from deploy_agent.core.analysis import (
    AnalysisPhase,
    AnalysisRules,
    Measurement,
    QueryResult,
    Verdict,
    assess_measurement,
    decide_analysis,
    parse_condition,
    plan_next_measurement,
)

BELOW_5_PERCENT = parse_condition("result < 0.05")
AT_LEAST_5_PERCENT = parse_condition("result >= 0.05")

CONDITIONS: dict[str, tuple[str, float, bool]] = {
    "less than holds below the number": ("result < 0.05", 0.01, True),
    "less than fails at the number": ("result < 0.05", 0.05, False),
    "at most holds at the number": ("result <= 0.05", 0.05, True),
    "greater than holds above": ("result > 10", 11, True),
    "at least fails below": ("result >= 0.99", 0.98, False),
    "equals holds for the same number": ("result == 1", 1.0, True),
    "not equal fails for the same number": ("result != 0", 0.0, False),
    "spaces are optional": ("result>=2", 2, True),
    "negative numbers are read": ("result > -1.5", -1, True),
    "exponents are read": ("result < 1e-3", 0.0001, True),
}


@pytest.mark.parametrize(("text", "value", "holds"), CONDITIONS.values(), ids=CONDITIONS.keys())
def test_condition_holds(text: str, value: float, holds: bool) -> None:
    """A parsed condition compares the result with its number by its comparator."""
    assert parse_condition(text).holds(value) is holds


NOT_CONDITIONS = {
    "code is never evaluated": "__import__('os').system('id')",
    "another name than result": "value < 1",
    "no number": "result <",
    "an unknown comparator": "result => 1",
    "two comparisons": "result < 1 and result > 0",
    "a word for a number": "result < NaN",
    "empty": "",
}


@pytest.mark.parametrize("text", NOT_CONDITIONS.values(), ids=NOT_CONDITIONS.keys())
def test_not_a_condition_is_refused_naming_the_grammar(text: str) -> None:
    """Anything but ``result <op> <number>`` is a ValueError that states the grammar."""
    with pytest.raises(ValueError, match="result <op> <number>"):
        parse_condition(text)


MEASUREMENTS: dict[str, tuple[QueryResult, bool, Verdict, float | None]] = {
    "a value meeting the success condition is successful": (QueryResult((0.01,)), False, "successful", 0.01),
    "without a failure condition, missing success is failed": (QueryResult((0.3,)), False, "failed", 0.3),
    "a value meeting the failure condition is failed": (QueryResult((0.3,)), True, "failed", 0.3),
    "the failure condition wins when both hold": (QueryResult((0.05,)), True, "failed", 0.05),
    "an empty result is inconclusive": (QueryResult(()), False, "inconclusive", None),
    "NaN (0/0 of a quiet service) is inconclusive": (QueryResult((math.nan,)), False, "inconclusive", None),
    "two series are inconclusive": (QueryResult((0.01, 0.02)), False, "inconclusive", None),
    "a query error is inconclusive": (
        QueryResult(error="bad_data: parse error"),
        False,
        "inconclusive",
        None,
    ),
}


@pytest.mark.parametrize(
    ("result", "with_failure", "verdict", "value"), MEASUREMENTS.values(), ids=MEASUREMENTS.keys()
)
def test_measurement_verdict(
    result: QueryResult, with_failure: bool, verdict: Verdict, value: float | None
) -> None:
    """One query result gets its verdict and keeps its single value."""
    measured = assess_measurement(result, BELOW_5_PERCENT, AT_LEAST_5_PERCENT if with_failure else None)
    assert (measured.verdict, measured.value) == (verdict, value)


def test_value_meeting_neither_condition_is_inconclusive() -> None:
    """With both conditions, a value in the gap between them is inconclusive."""
    measured = assess_measurement(QueryResult((0.03,)), parse_condition("result < 0.01"), AT_LEAST_5_PERCENT)
    assert measured.verdict == "inconclusive"


def test_failed_measurement_names_value_and_condition() -> None:
    """A failed measurement's reason gives the value and the condition that failed it."""
    measured = assess_measurement(QueryResult((0.31,)), BELOW_5_PERCENT, AT_LEAST_5_PERCENT)
    assert measured.reason == "value 0.31, failure_condition result >= 0.05"


S: Measurement = Measurement(0.01, "successful", "value 0.01, success_condition result < 0.05")
F: Measurement = Measurement(0.31, "failed", "value 0.31, failure_condition result >= 0.05")
N: Measurement = Measurement(None, "inconclusive", "the query returned no series")

#: id -> (measurements so far, rule changes, phase)
DECISIONS: dict[str, tuple[list[Measurement], dict[str, Any], AnalysisPhase]] = {
    "no measurement yet runs": ([], {}, "running"),
    "fewer successes than count run": ([S, S], {}, "running"),
    "count successes succeed": ([S, S, S], {}, "successful"),
    "one failure over a limit of 0 fails": ([S, F], {}, "failed"),
    "failures up to the limit run on": ([F, S], {"failure_limit": 1}, "running"),
    "failures beyond the limit fail": ([F, S, F], {"failure_limit": 1}, "failed"),
    "count reached within the failure limit succeeds": ([F, S, S], {"failure_limit": 1}, "successful"),
    "consecutive successes end early": (
        [F, S, S],
        {"count": 10, "failure_limit": 1, "consecutive_success_limit": 2},
        "successful",
    ),
    "a broken streak does not end early": (
        [S, F, S],
        {"count": 10, "failure_limit": 1, "consecutive_success_limit": 2},
        "running",
    ),
    "consecutive limit 0 is off": ([S, S], {"count": 10}, "running"),
    "inconclusive fail counts as failed": ([N], {}, "failed"),
    "inconclusive fail within the failure limit runs on": ([N], {"failure_limit": 1}, "running"),
    "inconclusive pause holds the analysis": ([N, N], {"inconclusive": "pause"}, "running"),
    "inconclusive pause counts only conclusive measurements": (
        [S, N, S],
        {"inconclusive": "pause"},
        "running",
    ),
    "inconclusive pause succeeds once count are conclusive": (
        [S, N, S, S],
        {"inconclusive": "pause"},
        "successful",
    ),
    "inconclusive pause fails past the inconclusive limit": (
        [N, N, N],
        {"inconclusive": "pause", "inconclusive_limit": 2},
        "failed",
    ),
    "inconclusive pause at the inconclusive limit runs on": (
        [N, N],
        {"inconclusive": "pause", "inconclusive_limit": 2},
        "running",
    ),
    "inconclusive pause still fails on a failed measurement": ([N, F], {"inconclusive": "pause"}, "failed"),
}


@pytest.mark.parametrize(("measurements", "changes", "phase"), DECISIONS.values(), ids=DECISIONS.keys())
def test_analysis_phase(
    measurements: list[Measurement], changes: dict[str, Any], phase: AnalysisPhase
) -> None:
    """A gate's phase follows from its measurements and its limits."""
    rules = replace(AnalysisRules(BELOW_5_PERCENT, AT_LEAST_5_PERCENT, count=3), **changes)
    assert decide_analysis(measurements, rules).phase == phase


def test_failed_analysis_says_how_many_and_why() -> None:
    """A failed analysis counts the failed measurements and shows the last failing value and condition."""
    rules = AnalysisRules(BELOW_5_PERCENT, AT_LEAST_5_PERCENT, count=3, failure_limit=2)
    decision = decide_analysis([F, F, F], rules)
    assert decision.reason == "3 of 3 measurements failed (value 0.31, failure_condition result >= 0.05)"


def test_inconclusive_limit_failure_says_the_last_reason() -> None:
    """Past the inconclusive limit the reason names the limit and the last inconclusive cause."""
    rules = AnalysisRules(BELOW_5_PERCENT, None, count=3, inconclusive="pause", inconclusive_limit=1)
    reason = decide_analysis([N, N], rules).reason
    assert (
        reason
        == "2 measurements inconclusive, more than inconclusive_limit 1 (last: the query returned no series)"
    )


NEXT = {
    "never measured: now": (None, 10.0, 0.0),
    "just measured: a whole interval": (0.0, 10.0, 10.0),
    "partway: the rest of the interval": (4.0, 10.0, 6.0),
    "overdue: now": (25.0, 10.0, 0.0),
}


@pytest.mark.parametrize(("since", "interval", "wait"), NEXT.values(), ids=NEXT.keys())
def test_next_measurement(since: float | None, interval: float, wait: float) -> None:
    """The next measurement is due one interval after the last."""
    assert plan_next_measurement(since, interval) == wait
