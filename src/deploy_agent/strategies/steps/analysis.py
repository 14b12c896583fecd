"""The analysis gates of a gated hold: one Prometheus measurement per gate per look, when it is due.

Each look measures the gates whose interval has passed (at most one measurement each: the task
returns and comes back, it never sleeps), records the measurement in the memory (for the verdict),
in the deployment's state (for the result), in an ``analysis_measurement`` event and in the gate
verdict counter, and says whether every gate succeeded, one failed, or when to look again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploy_agent.core.analysis import (
    AnalysisDecision,
    Measurement,
    QueryResult,
    assess_measurement,
    decide_analysis,
    plan_next_measurement,
)
from deploy_agent.strategies.base import Run
from deploy_agent.strategies.steps.memory import AnalysisRecord, GateMemory, MeasurementRecord

if TYPE_CHECKING:
    from deploy_agent.models.analysis import AnalysisGate

#: measurements kept in the state for the result (the latest ones)
ANALYSIS_KEPT = 100
#: how long one query may take (also sent to Prometheus as the query's own timeout)
QUERY_TIMEOUT_SECONDS = 10.0
_VERDICT_RESULTS = {"successful": "passed", "failed": "failed", "inconclusive": "inconclusive"}


@dataclass(frozen=True)
class AnalysisLook:
    """What a look at the analysis gates found: all succeeded, one failed (its name and why), or
    running, with the seconds until the next measurement is due."""

    succeeded: bool
    failed: tuple[str, str] | None = None
    next_in: float = math.inf


def look_at_analysis(run: Run[GateMemory], label: str) -> AnalysisLook:
    """Take the due measurements of the message's analysis gates for the hold ``label``; judge each gate."""
    memory, now = run.memory, run.now()
    next_in = math.inf
    running = False
    for gate in run.request.analysis:
        record = memory.analysis.setdefault(gate.name, AnalysisRecord())
        if record.phase != "running":
            continue
        since = None if record.last_at is None else (now - record.last_at).total_seconds()
        due = plan_next_measurement(since, gate.interval_seconds)
        if due > 0:
            running, next_in = True, min(next_in, due)
            continue
        decision = _measure(run, gate, record, label)
        record.phase = decision.phase
        if decision.phase == "failed":
            return AnalysisLook(False, failed=(gate.name, decision.reason))
        if decision.phase == "running":
            running, next_in = True, min(next_in, float(gate.interval_seconds))
    return AnalysisLook(not running, next_in=next_in)


def _measure(
    run: Run[GateMemory], gate: AnalysisGate, record: AnalysisRecord, label: str
) -> AnalysisDecision:
    """Take one measurement of ``gate``, record it everywhere, and return the gate's decision."""
    rules = gate.rules()
    measured = assess_measurement(_query(run, gate.url, gate.query), rules.success, rules.failure)
    record.measurements.append(MeasurementRecord(**vars(measured)))
    record.last_at = run.now()
    _record(run, gate.name, label, gate.query, measured)
    return decide_analysis([Measurement(**m.model_dump()) for m in record.measurements], rules)


def _query(run: Run[GateMemory], url: str, query: str) -> QueryResult:
    prometheus = run.ports.prometheus
    if prometheus is None:
        return QueryResult(error="no Prometheus client is wired into this worker")
    return prometheus.query(url, query, QUERY_TIMEOUT_SECONDS)


def _record(run: Run[GateMemory], gate: str, label: str, query: str, measured: Measurement) -> None:
    at = run.now()
    entry: dict[str, Any] = {
        "gate": gate,
        "step": label,
        "query": query,
        "value": measured.value,
        "verdict": measured.verdict,
        "reason": measured.reason,
        "at": at.isoformat(),
    }
    run.state.analysis = [*run.state.analysis, entry][-ANALYSIS_KEPT:]
    run.emit("analysis_measurement", **entry)
    run.ports.count_verdict("prometheus", _VERDICT_RESULTS[measured.verdict])
