"""The gates of the traffic strategies: a paused step held while health, alarms and latency pass.

Split from :mod:`deploy_agent.strategies.traffic` (which re-exports ``gate_pause`` and
``check_gates``); probes are kept in ``state.strategy_state`` so a redelivered step counts on.
"""

from __future__ import annotations

from datetime import datetime

from deploy_agent.adapters.outbound import mask_url
from deploy_agent.core.health import Probe, assess_health
from deploy_agent.core.outcome import Trigger
from deploy_agent.core.traffic import gate_verdict
from deploy_agent.strategies.base import Progress, Run


def alarm_names(run: Run) -> list[str]:
    """Return the CloudWatch alarms the message's rollback watches."""
    return list((run.request.get("rollback") or {}).get("alarm_names") or [])


def gate_pause(run: Run, seconds: float, label: str) -> Progress:
    """Hold for ``seconds`` while the gates (health, alarms, latency) pass; fail at the first failing one."""
    ss = run.state.strategy_state
    key = f"pause_started:{label}"
    if key not in ss:
        ss[key] = run.now().isoformat()
        ss["gate_probes"] = []
    started = datetime.fromisoformat(ss[key])
    verdict = check_gates(run)
    if verdict is not None:
        gate, reason = verdict
        trigger = Trigger.ALARM if gate == "alarm" else Trigger.HEALTH_CHECK
        run.state.fail(f"{gate}_gate_failed", f"{label}: {reason}", trigger)
        return Progress.finished()
    remaining = seconds - (run.now() - started).total_seconds()
    if remaining <= 0:
        return Progress.finished()
    return Progress.wait(min(run.poll_seconds, remaining))


def check_gates(run: Run) -> tuple[str, str] | None:
    """Return (gate, reason) of the first failing gate, or None when all pass for now."""
    spec = run.request.get("health_check") or {}
    ss = run.state.strategy_state
    health_ok: bool | None = None
    latency: float | None = None
    if spec.get("url") and run.prober is not None:
        probe = run.prober.probe(
            spec["url"], int(spec.get("expected_status", 200)), float(spec.get("timeout_seconds", 5)), None
        )
        latency = probe.latency_ms
        ss["gate_probes"] = [
            *ss.get("gate_probes", []),
            {"ok": probe.ok, "error": probe.error, "status": probe.status},
        ][-20:]
        probes = [
            Probe(ok=p["ok"], status=p["status"], latency_ms=0.0, error=p["error"], at=0.0)
            for p in ss["gate_probes"]
        ]
        health_ok = assess_health(probes, 10_000, int(spec.get("unhealthy_threshold", 3))) != "unhealthy"
    alarms = [a["name"] for a in run.alarms.alarms_in_alarm(alarm_names(run))] if alarm_names(run) else []
    verdict = gate_verdict(health_ok, alarms, latency, spec.get("max_latency_ms"))
    if verdict.passed:
        return None
    return str(verdict.gate), verdict.reason


def probe_until_verdict(run: Run, key: str, url: str, where: str) -> Progress:
    spec = run.request.get("health_check") or {}
    ss = run.state.strategy_state
    probe = run.prober.probe(
        url,
        int(spec.get("expected_status", 200)),
        float(spec.get("timeout_seconds", 5)),
        spec.get("max_latency_ms"),
    )
    ss[key] = [*ss.get(key, []), {"ok": probe.ok, "error": probe.error, "status": probe.status}][-20:]
    verdict = assess_health(
        [Probe(ok=p["ok"], status=p["status"], latency_ms=0.0, error=p["error"], at=0.0) for p in ss[key]],
        int(spec.get("healthy_threshold", 3)),
        int(spec.get("unhealthy_threshold", 3)),
    )
    if verdict == "healthy":
        return Progress.finished()
    if verdict == "unhealthy":
        why = probe.error or f"status {probe.status}"
        run.state.fail(
            "health_check_failed",
            f"the new release failed its check through the {where} ({mask_url(url)}): {why}",
            Trigger.HEALTH_CHECK,
        )
        return Progress.finished()
    return Progress.wait(float(spec.get("interval_seconds") or run.poll_seconds))


def with_path(base: str, run: Run) -> str:
    """The test listener's URL with the health check's path (``/health`` on the test port)."""
    from urllib.parse import urlsplit, urlunsplit

    health = (run.request.get("health_check") or {}).get("url")
    if not health:
        return base
    target, path = urlsplit(base), urlsplit(health)
    if target.path not in ("", "/"):
        return base
    return str(urlunsplit((target.scheme, target.netloc, path.path, path.query, "")))
