"""Prometheus's instant-query API (``GET /api/v1/query``) for the analysis gates. A query never raises.

The request goes through :mod:`deploy_agent.adapters.outbound`, like the health probes: the
operator's ``outbound`` policy (address classes and ``url_hosts``), no redirects, a byte cap on
the answer and one deadline for all of it. Every failure (refused, no answer, an error status, an
answer that is not Prometheus's JSON, a range vector or a string) becomes a ``QueryResult`` whose
``error`` says why, in our words: an inconclusive measurement.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlencode

from deploy_agent.adapters.outbound import Outbound
from deploy_agent.adapters.outbound_rules import OutboundFailed, OutboundRefused
from deploy_agent.core.analysis import QueryResult

_MAX_ERROR_TEXT = 300


class PrometheusApi:
    """Sends instant queries through ``outbound`` (no policy's rules when none is given)."""

    def __init__(self, outbound: Outbound | None = None) -> None:
        self.outbound = outbound if outbound is not None else Outbound()

    def query(self, url: str, query: str, timeout_seconds: float = 10.0) -> QueryResult:
        """Return the sample values of ``query`` now, one per series, or why there are none."""
        params = urlencode({"query": query, "timeout": f"{max(timeout_seconds, 0.001):g}s"})
        endpoint = f"{url.rstrip('/')}/api/v1/query?{params}"
        try:
            response = self.outbound.request(
                "GET",
                endpoint,
                timeout_seconds=timeout_seconds,
                field="analysis url",
                headers={"Accept": "application/json"},
            )
        except OutboundRefused as exc:
            return _failed(exc.message)
        except OutboundFailed as exc:
            return _failed(f"{exc.reason}: {exc.message}")
        if response.truncated:
            return _failed("the answer is larger than the worker reads")
        try:
            body = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            return _failed(f"HTTP {response.status}: the answer is not JSON")
        if not isinstance(body, dict):
            return _failed(f"HTTP {response.status}: the answer is not Prometheus's JSON")
        if body.get("status") != "success":
            kind, error = body.get("errorType", "error"), body.get("error", "no reason given")
            return _failed(f"HTTP {response.status}: {kind}: {error}")
        return read_data(body.get("data"))


def read_data(data: Any) -> QueryResult:
    """Return the values of an instant query's ``data``: a vector's samples or a scalar's value."""
    if not isinstance(data, dict):
        return _failed("the answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "vector" and isinstance(result, list):
            return QueryResult(tuple(_number(series["value"][1]) for series in result))
        if kind == "scalar" and isinstance(result, list):
            return QueryResult((_number(result[1]),))
    except (KeyError, IndexError, TypeError, ValueError):
        return _failed(f"the {kind} in the answer is malformed")
    return _failed(f"the query gives a {kind}, not an instant vector or a scalar")


def _number(text: Any) -> float:
    """Prometheus writes sample values as strings: "0.05", "NaN", "+Inf"."""
    if not isinstance(text, str):
        raise TypeError("a sample value is not a string")
    value = float(text)
    return math.nan if math.isnan(value) else value


def _failed(text: str) -> QueryResult:
    return QueryResult(error=text[:_MAX_ERROR_TEXT])
