"""Probing intervals a message sets have a floor of 1 s (a target cannot be probed flat out)."""

from __future__ import annotations

import pytest

from deploy_agent.core.errors import RequestRejected
from deploy_agent.models.parsing import parse_request


def message(interval: float) -> dict[str, object]:
    return {
        "cluster_name": "c",
        "service_name": "s",
        "image": {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1"},
        "health_check": {"url": "http://example.com/health", "interval_seconds": interval},
    }


@pytest.mark.parametrize("interval", [0.01, 0.5, 0.999])
def test_an_interval_below_one_second_is_rejected_naming_the_field(interval: float) -> None:
    with pytest.raises(RequestRejected) as caught:
        parse_request(message(interval))
    assert caught.value.errors == [
        {"field": "health_check.interval_seconds", "problem": "Input should be greater than or equal to 1"}
    ]


def test_one_second_is_accepted() -> None:
    parsed = parse_request(message(1.0))
    assert parsed.health_check is not None
    assert parsed.health_check.interval_seconds == 1.0
