"""The message's ``analysis`` gates: what is accepted, and how each bad field is named."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_agent.core.errors import RequestRejected
from deploy_agent.models import parse_request

from .messages import LOAD_BALANCER, minimal


def canary(*gates: dict[str, Any]) -> dict[str, Any]:
    """A canary message with ``gates`` as its analysis."""
    strategy = {"type": "canary", "load_balancer": LOAD_BALANCER, "steps": [{"weight": 10}]}
    return {**minimal(), "strategy": strategy, "analysis": list(gates)}


def gate(**changes: Any) -> dict[str, Any]:
    return {
        "name": "error-rate",
        "url": "http://prometheus.internal:9090",
        "query": "sum(rate(errors[1m]))",
        "success_condition": "result < 0.05",
        "interval_seconds": 30,
        "count": 5,
        **changes,
    }


class TestAccepted:
    def test_no_analysis_is_an_empty_list(self) -> None:
        """A message without analysis has none."""
        assert parse_request(minimal()).analysis == []

    def test_a_gate_gets_its_defaults(self) -> None:
        """failure_limit 0, consecutive_success_limit off, inconclusive fail, kind prometheus."""
        (parsed,) = parse_request(canary(gate())).analysis
        assert (parsed.kind, parsed.failure_limit, parsed.consecutive_success_limit) == ("prometheus", 0, 0)
        assert (parsed.inconclusive, parsed.inconclusive_limit, parsed.failure_condition) == ("fail", 3, None)

    def test_camel_case_names_are_accepted(self) -> None:
        """successCondition, failureCondition, intervalSeconds ... parse like their snake_case names."""
        camel = {
            "name": "e",
            "url": "https://prom.example",
            "query": "up",
            "successCondition": "result == 1",
            "failureCondition": "result != 1",
            "intervalSeconds": 5,
            "count": 2,
            "failureLimit": 1,
            "consecutiveSuccessLimit": 2,
            "inconclusiveLimit": 4,
        }
        (parsed,) = parse_request(canary(camel)).analysis
        rules = parsed.rules()
        assert (str(rules.success), str(rules.failure)) == ("result == 1", "result != 1")
        assert (rules.failure_limit, rules.consecutive_success_limit, rules.inconclusive_limit) == (1, 2, 4)


REJECTED: dict[str, tuple[dict[str, Any], str]] = {
    "a condition that is code": (
        canary(gate(success_condition="__import__('os')")),
        "analysis.0.success_condition",
    ),
    "a failure condition off the grammar": (
        canary(gate(failure_condition="errors > 1")),
        "analysis.0.failure_condition",
    ),
    "a URL that is not http(s)": (canary(gate(url="file:///etc/passwd")), "analysis.0.url"),
    "a URL with a query string": (canary(gate(url="http://p:9090/?x=1")), "analysis.0.url"),
    "another kind than prometheus": (canary(gate(kind="datadog")), "analysis.0.kind"),
    "an interval under a second": (canary(gate(interval_seconds=0.1)), "analysis.0.interval_seconds"),
    "a count of 0": (canary(gate(count=0)), "analysis.0.count"),
    "inconclusive neither fail nor pause": (canary(gate(inconclusive="ignore")), "analysis.0.inconclusive"),
    "a streak longer than the count": (
        canary(gate(consecutive_success_limit=6)),
        "analysis.0.consecutive_success_limit",
    ),
    "two gates of one name": (canary(gate(), gate()), "analysis.1.name"),
    "an unknown field": (canary(gate(threshold=1)), "analysis.0.threshold"),
    "analysis with rolling": ({**minimal(), "analysis": [gate()]}, "analysis"),
}


@pytest.mark.parametrize(("message", "field"), REJECTED.values(), ids=REJECTED.keys())
def test_bad_gate_is_rejected_naming_the_field(message: dict[str, Any], field: str) -> None:
    """A bad analysis gate rejects the message with the offending field's path."""
    with pytest.raises(RequestRejected) as caught:
        parse_request(message)
    assert field in [e["field"] for e in caught.value.errors], caught.value.errors
