"""Prometheus as a scripted fake (``PrometheusPort``), and a counter of gate verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from deploy_agent.core.analysis import QueryResult


def sample(number: float) -> QueryResult:
    """Return a one-series answer holding ``number``."""
    return QueryResult((number,))


@dataclass
class FakePrometheus:
    """Answers queries from ``script`` in order; the last answer repeats (an empty vector when none).

    ``answers`` maps a query to its own script instead, for several gates at once.
    """

    script: list[QueryResult] = field(default_factory=list)
    answers: dict[str, list[QueryResult]] = field(default_factory=dict)
    #: (url, query) of every query, in order
    queries: list[tuple[str, str]] = field(default_factory=list)

    def query(self, url: str, query: str, timeout_seconds: float = 10.0) -> QueryResult:
        self.queries.append((url, query))
        script = self.answers.get(query, self.script)
        if not script:
            return QueryResult(())
        return script.pop(0) if len(script) > 1 else script[0]


@dataclass
class VerdictLog:
    """Counts gate verdicts (``GateVerdictCounter``) as ``(kind, result)`` pairs, in order."""

    counted: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, kind: str, result: str) -> None:
        self.counted.append((kind, result))
