"""Prometheus analysis gates, the way Argo Rollouts' analysis works. Pure.

A gate measures one PromQL query every ``interval_seconds``, up to ``count`` times, while a step
is held. Each measurement is judged on its own (:func:`assess_measurement`)::

    successful    success_condition holds (and failure_condition does not)
    failed        failure_condition holds; without one, success_condition does not hold
    inconclusive  the query errored, or its result is empty, NaN or more than one series;
                  also a value for which neither condition holds when both are given

and the gate from all its measurements so far (:func:`decide_analysis`)::

    failed        failed measurements exceed failure_limit; with inconclusive "fail" an inconclusive
                  measurement counts as failed; with "pause" inconclusive measurements exceed
                  inconclusive_limit
    successful    consecutive_success_limit (> 0) successes in a row, or ``count`` measurements
                  done without failing (with "pause", only conclusive measurements count)
    running       anything else: measure again at the interval

With ``inconclusive: "pause"`` the step is held (traffic unchanged) and measuring goes on at the
interval until the measurements are conclusive, so missing data delays a step instead of failing it.

Conditions are parsed, never evaluated as code: ``result <op> <number>`` with ``<op>`` one of
``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=`` (:func:`parse_condition`).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["successful", "failed", "inconclusive"]
AnalysisPhase = Literal["running", "successful", "failed"]

_COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION = re.compile(r"^\s*result\s*(<=|>=|==|!=|<|>)\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*$")
CONDITION_GRAMMAR = "result <op> <number>, with <op> one of <, <=, >, >=, ==, !="


@dataclass(frozen=True)
class Condition:
    """A parsed condition: ``result <comparator> <threshold>``."""

    comparator: str
    threshold: float

    def holds(self, value: float) -> bool:
        """Return whether ``value`` satisfies the condition."""
        return _COMPARATORS[self.comparator](value, self.threshold)

    def __str__(self) -> str:
        return f"result {self.comparator} {self.threshold:g}"


def parse_condition(text: str) -> Condition:
    """Return the condition ``text`` states; ``ValueError`` naming the grammar when it is not one."""
    match = _CONDITION.match(text)
    if match is None:
        raise ValueError(f"must read {CONDITION_GRAMMAR} (e.g. 'result < 0.05')")
    threshold = float(match.group(2))
    if not math.isfinite(threshold):
        raise ValueError("the number must be finite")
    return Condition(match.group(1), threshold)


@dataclass(frozen=True)
class QueryResult:
    """What one instant query answered: its sample values (one per series), or why there are none."""

    values: tuple[float, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Measurement:
    """One judged measurement: the value (None when there was no single one), its verdict and why."""

    value: float | None
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class AnalysisRules:
    """The limits of one gate (the message's ``analysis`` entry, conditions parsed)."""

    success: Condition
    failure: Condition | None
    count: int
    failure_limit: int = 0
    consecutive_success_limit: int = 0
    inconclusive: Literal["fail", "pause"] = "fail"
    inconclusive_limit: int = 3


@dataclass(frozen=True)
class AnalysisDecision:
    """Where a gate stands: running, successful or failed, and a sentence saying why."""

    phase: AnalysisPhase
    reason: str


def assess_measurement(result: QueryResult, success: Condition, failure: Condition | None) -> Measurement:
    """Return the verdict on one query result (see the module docstring for the rules)."""
    if result.error is not None:
        return Measurement(None, "inconclusive", f"the query failed: {result.error}")
    if not result.values:
        return Measurement(None, "inconclusive", "the query returned no series")
    if len(result.values) > 1:
        return Measurement(None, "inconclusive", f"the query returned {len(result.values)} series, not one")
    value = result.values[0]
    if math.isnan(value):
        return Measurement(None, "inconclusive", "the query returned NaN")
    if failure is not None and failure.holds(value):
        return Measurement(value, "failed", f"value {value:g}, failure_condition {failure}")
    if success.holds(value):
        return Measurement(value, "successful", f"value {value:g}, success_condition {success}")
    if failure is None:
        return Measurement(value, "failed", f"value {value:g}, success_condition {success} not met")
    return Measurement(value, "inconclusive", f"value {value:g} meets neither condition")


def decide_analysis(measurements: Sequence[Measurement], rules: AnalysisRules) -> AnalysisDecision:
    """Return whether a gate failed, succeeded or runs on, from its measurements so far, in order."""
    taken = len(measurements)
    inconclusive = sum(m.verdict == "inconclusive" for m in measurements)
    failed = sum(m.verdict == "failed" for m in measurements)
    if rules.inconclusive == "fail":
        failed += inconclusive
    last = measurements[-1] if measurements else None
    if failed > rules.failure_limit and last is not None:
        worst = next((m for m in reversed(measurements) if m.verdict != "successful"), last)
        return AnalysisDecision("failed", f"{failed} of {taken} measurements failed ({_why(worst)})")
    if rules.inconclusive == "pause" and inconclusive > rules.inconclusive_limit and last is not None:
        return AnalysisDecision(
            "failed",
            f"{inconclusive} measurements inconclusive, more than inconclusive_limit "
            f"{rules.inconclusive_limit} (last: {last.reason})",
        )
    streak = _successes_in_a_row(measurements)
    if rules.consecutive_success_limit > 0 and streak >= rules.consecutive_success_limit:
        return AnalysisDecision("successful", f"{streak} successful measurements in a row")
    counted = taken - inconclusive if rules.inconclusive == "pause" else taken
    if counted >= rules.count:
        return AnalysisDecision("successful", f"{counted} of {rules.count} measurements without failing")
    return AnalysisDecision("running", f"{counted} of {rules.count} measurements taken")


def plan_next_measurement(seconds_since_last: float | None, interval_seconds: float) -> float:
    """Return the seconds until the next measurement is due (0: now; never measured: now)."""
    if seconds_since_last is None:
        return 0.0
    return max(0.0, interval_seconds - seconds_since_last)


def _successes_in_a_row(measurements: Sequence[Measurement]) -> int:
    streak = 0
    for measurement in reversed(measurements):
        if measurement.verdict != "successful":
            break
        streak += 1
    return streak


def _why(measurement: Measurement) -> str:
    if measurement.verdict == "inconclusive":
        return f"inconclusive: {measurement.reason}"
    return measurement.reason
