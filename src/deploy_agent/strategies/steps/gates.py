"""The gates of the traffic strategies: a paused step held while health, alarms and latency pass.

Probes are kept in the strategy's memory, so a redelivered step counts on.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from deploy_agent.core.health import Probe, assess_health
from deploy_agent.core.outcome import Trigger
from deploy_agent.core.redact import mask_url
from deploy_agent.core.traffic import gate_verdict
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.steps.memory import ProbeRecord, TrafficMemory

PROBES_KEPT = 20


def alarm_names(run: Run[TrafficMemory]) -> list[str]:
    """Return the CloudWatch alarms the message's rollback watches."""
    return list(run.request.rollback.alarm_names)


def gate_pause(run: Run[TrafficMemory], seconds: float, label: str) -> Progress:
    """Hold for ``seconds`` while the gates (health, alarms, latency) pass; fail at the first failing one."""
    memory = run.memory
    if label not in memory.pause_started:
        memory.pause_started[label] = run.now()
        memory.gate_probes = []
    started = memory.pause_started[label]
    verdict = check_gates(run)
    if verdict is not None:
        gate, reason = verdict
        trigger = Trigger.ALARM if gate == "alarm" else Trigger.HEALTH_CHECK
        return run.fail(f"{gate}_gate_failed", f"{label}: {reason}", trigger)
    remaining = seconds - (run.now() - started).total_seconds()
    if remaining <= 0:
        return Progress.finished()
    return Progress.wait(min(run.poll_seconds, remaining))


def check_gates(run: Run[TrafficMemory]) -> tuple[str, str] | None:
    """Return (gate, reason) of the first failing gate, or None when all pass for now."""
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


def _record(probe: Probe) -> ProbeRecord:
    return ProbeRecord(ok=probe.ok, status=probe.status, error=probe.error)


def _probes(records: list[ProbeRecord]) -> list[Probe]:
    return [Probe(ok=p.ok, status=p.status, latency_ms=0.0, error=p.error, at=0.0) for p in records]
