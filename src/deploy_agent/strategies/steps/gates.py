"""The gates of a held step: health, alarms, latency and Prometheus analysis, for any strategy.

``hold_gates`` holds a step for its pause while every gate passes, and until every analysis gate
has succeeded; the first failing gate fails the step. It keeps its facts in a ``GateMemory``, so any
strategy whose memory subclasses it (the listener-driven ones, ECS-native hooks) can hold gates,
and a redelivered step counts on.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from deploy_agent.core.health import Probe, assess_health
from deploy_agent.core.outcome import Trigger
from deploy_agent.core.redact import mask_url
from deploy_agent.core.traffic import gate_verdict
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.steps.analysis import look_at_analysis
from deploy_agent.strategies.steps.memory import AnalysisRecord, GateMemory, ProbeRecord, TrafficMemory

PROBES_KEPT = 20


def alarm_names(run: Run[GateMemory]) -> list[str]:
    """Return the CloudWatch alarms the message's rollback watches."""
    return list(run.request.rollback.alarm_names)


def hold_gates(run: Run[GateMemory], label: str, seconds: float) -> Progress:
    """Hold the step ``label`` for ``seconds`` behind every gate.

    Finished once the hold has elapsed and every analysis gate of the message has succeeded; failed
    (``run.fail``) at the first failing gate, naming the step and the gate; else come back at the
    next poll, the hold's end or the next measurement, whichever is first.
    """
    memory = run.memory
    if label not in memory.pause_started:
        memory.pause_started[label] = run.now()
        memory.gate_probes = []
        memory.analysis = {gate.name: AnalysisRecord() for gate in run.request.analysis}
    started = memory.pause_started[label]
    verdict = check_gates(run)
    if verdict is not None:
        gate, reason = verdict
        trigger = Trigger.ALARM if gate == "alarm" else Trigger.HEALTH_CHECK
        return run.fail(f"{gate}_gate_failed", f"{label}: {reason}", trigger)
    analysis = look_at_analysis(run, label)
    if analysis.failed is not None:
        name, reason = analysis.failed
        return run.fail("analysis_failed", f"{label}: analysis {name} failed: {reason}", Trigger.ANALYSIS)
    remaining = seconds - (run.now() - started).total_seconds()
    if remaining <= 0 and analysis.succeeded:
        return Progress.finished()
    waits = [run.poll_seconds, analysis.next_in, *([remaining] if remaining > 0 else [])]
    return Progress.wait(min(waits))


def check_gates(run: Run[GateMemory]) -> tuple[str, str] | None:
    """Return (gate, reason) of the first failing gate, or None when all pass for now.

    Each gate that ran is counted (``ports.count_verdict``): health, alarm, latency.
    """
    spec = run.request.health_check
    memory = run.memory
    health_ok: bool | None = None
    latency: float | None = None
    if spec is not None and spec.url:
        probe = run.ports.prober.probe(spec.url, spec.expected_status, spec.timeout_seconds, None)
        latency = probe.latency_ms
        memory.gate_probes = [*memory.gate_probes, _record(probe)][-PROBES_KEPT:]
        health = assess_health(_probes(memory.gate_probes), 10_000, spec.unhealthy_threshold)
        health_ok = health != "unhealthy"
    names = alarm_names(run)
    alarms = [a["name"] for a in run.ports.alarms.alarms_in_alarm(names)] if names else []
    max_latency = spec.max_latency_ms if spec is not None else None
    _count(run, "health", health_ok)
    _count(run, "alarm", not alarms if names else None)
    _count(run, "latency", None if latency is None or max_latency is None else latency <= max_latency)
    verdict = gate_verdict(health_ok, alarms, latency, max_latency)
    if verdict.passed:
        return None
    return str(verdict.gate), verdict.reason


def probe_until_verdict(run: Run[TrafficMemory], url: str, where: str) -> Progress:
    """Probe ``url`` until the health check's thresholds say healthy (finished) or unhealthy (failed)."""
    spec = run.request.health_check
    memory = run.memory
    expected = spec.expected_status if spec is not None else 200
    timeout = spec.timeout_seconds if spec is not None else 5.0
    probe = run.ports.prober.probe(url, expected, timeout, spec.max_latency_ms if spec else None)
    memory.test_probes = [*memory.test_probes, _record(probe)][-PROBES_KEPT:]
    verdict = assess_health(
        _probes(memory.test_probes),
        spec.healthy_threshold if spec is not None else 3,
        spec.unhealthy_threshold if spec is not None else 3,
    )
    if verdict == "healthy":
        return Progress.finished()
    if verdict == "unhealthy":
        why = probe.error or f"status {probe.status}"
        return run.fail(
            "health_check_failed",
            f"the new release failed its check through the {where} ({mask_url(url)}): {why}",
            Trigger.HEALTH_CHECK,
        )
    interval = spec.interval_seconds if spec is not None else None
    return Progress.wait(float(interval or run.poll_seconds))


def with_path(base: str, run: Run[TrafficMemory]) -> str:
    """The test listener's URL with the health check's path (``/health`` on the test port)."""
    health = run.request.health_check.url if run.request.health_check is not None else None
    if not health:
        return base
    target, path = urlsplit(base), urlsplit(health)
    if target.path not in ("", "/"):
        return base
    return str(urlunsplit((target.scheme, target.netloc, path.path, path.query, "")))


def _count(run: Run[GateMemory], kind: str, passed: bool | None) -> None:
    if passed is not None:
        run.ports.count_verdict(kind, "passed" if passed else "failed")


def _record(probe: Probe) -> ProbeRecord:
    return ProbeRecord(ok=probe.ok, status=probe.status, error=probe.error)


def _probes(records: list[ProbeRecord]) -> list[Probe]:
    return [Probe(ok=p.ok, status=p.status, latency_ms=0.0, error=p.error, at=0.0) for p in records]
