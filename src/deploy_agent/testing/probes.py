"""CloudWatch alarms, HTTP probes, the zero-downtime watch and revisions, as scripted fakes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from deploy_agent.core.health import Probe
from deploy_agent.core.traffic import ZeroDowntimeReport


# --- CloudWatch, HTTP probes, zero-downtime probes ------------------------------------------------
@dataclass
class FakeAlarms:
    """CloudWatch alarms by name: ``states`` maps a name to OK, ALARM or INSUFFICIENT_DATA."""

    states: dict[str, str] = field(default_factory=dict)
    queries: list[list[str]] = field(default_factory=list)

    def set_state(self, name: str, state: str) -> None:
        self.states[name] = state

    def alarms_in_alarm(self, names: Sequence[str]) -> list[dict[str, str]]:
        """Return ``{"name", "reason", "updated"}`` for each named alarm in ALARM, in ``names`` order."""
        self.queries.append(list(names))
        return [
            {"name": n, "reason": "Threshold Crossed", "updated": "2026-01-01T00:00:00+00:00"}
            for n in dict.fromkeys(names)
            if self.states.get(n) == "ALARM"
        ]

    def missing_alarms(self, names: Sequence[str]) -> list[str]:
        self.queries.append(list(names))
        return [n for n in dict.fromkeys(names) if n not in self.states]


def probe_ok(status: int = 200, latency_ms: float = 20.0) -> Probe:
    """Return a passing probe."""
    return Probe(ok=True, status=status, latency_ms=latency_ms, error=None, at=0.0)


def probe_failed(status: int | None = 500, error: str | None = None, latency_ms: float = 20.0) -> Probe:
    """Return a failing probe (``status=None`` for a connection error)."""
    why = error or (f"status {status}, expected 200" if status is not None else "ConnectionError")
    return Probe(ok=False, status=status, latency_ms=latency_ms, error=why, at=0.0)


@dataclass
class FakeProber:
    """Answers probes from ``script`` in order; the last answer repeats (a passing one when empty)."""

    script: list[Probe] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def probe(
        self,
        url: str,
        expected_status: int = 200,
        timeout_seconds: float = 5.0,
        max_latency_ms: int | None = None,
    ) -> Probe:
        self.urls.append(url)
        if not self.script:
            return probe_ok()
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


@dataclass
class WatchedChange:
    """One listener change a ``FakeTrafficWatch`` watched: its key, URL and scripted report."""

    key: str
    url: str
    report: ZeroDowntimeReport
    ended_after: float | None = None


@dataclass
class FakeTrafficWatch:
    """The zero-downtime watch (``TrafficWatchPort``): each change gets the next of ``reports``.

    Without scripted reports a change reports 10 requests and no failures. A change's report is
    available as soon as ``end_after`` was called (the fake needs no time to propagate).
    """

    reports: list[ZeroDowntimeReport] = field(default_factory=list)
    changes: list[WatchedChange] = field(default_factory=list)

    def begin(self, key: str, url: str) -> None:
        if any(c.key == key for c in self.changes):
            return
        report = self.reports.pop(0) if self.reports else ZeroDowntimeReport(10, 0, 0.0)
        self.changes.append(WatchedChange(key, url, report))

    def end_after(self, key: str, seconds: float) -> None:
        for change in self.changes:
            if change.key == key:
                change.ended_after = seconds

    def report(self, key: str) -> ZeroDowntimeReport | None:
        for change in self.changes:
            if change.key == key and change.ended_after is not None:
                return change.report
        return None


@dataclass
class FakeRevisions:
    """``RevisionsPort``: every revision is usable as it is, unless ``copies`` maps it to a copy."""

    copies: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def usable_revision(self, task_definition_arn: str) -> str:
        self.asked.append(task_definition_arn)
        return self.copies.get(task_definition_arn, task_definition_arn)
