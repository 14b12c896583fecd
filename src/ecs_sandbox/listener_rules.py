"""What an ALB listener does with one request: match its rules, pick a target group by weight.

Pure functions over plain data read from moto: a listener is its rules (priority, conditions,
actions) and its default actions. Rules are tried in priority order, the first whose conditions all
match wins, the default actions come last. Conditions follow ELBv2: ``path-pattern`` (case-sensitive,
path only), ``host-header`` (case-insensitive, port ignored), ``http-header``, ``http-request-method``,
``query-string`` and ``source-ip``; within one condition any value may match, ``*`` and ``?`` are
wildcards. A forward action sends a request to one target group, chosen by weight (0-999, 0 gets
nothing) among all of its groups whatever their health, as an ALB does.
"""

from __future__ import annotations

import ipaddress
import random
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class RequestFacts:
    """The parts of an HTTP request that listener rules can look at."""

    method: str
    target: str  # the request line's target: path and query
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    source_ip: str = "127.0.0.1"

    @property
    def path(self) -> str:
        """Return the path without the query string."""
        return urlsplit(self.target).path or "/"

    @property
    def host(self) -> str:
        """Return the Host header without its port, lower-cased."""
        return self.headers.get("host", "").rsplit(":", 1)[0].lower()


@dataclass(frozen=True)
class Rule:
    """One listener rule; the default rule has priority None and no conditions."""

    priority: int | None
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]


def _wildcard(pattern: str, value: str, case_sensitive: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _values(condition: dict[str, Any], config_key: str) -> list[Any]:
    config = condition.get(config_key) or {}
    return list(config.get("Values") or condition.get("Values") or [])


def _in_network(source: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(source) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def matches_condition(condition: dict[str, Any], request: RequestFacts) -> bool:
    """Return whether one rule condition holds for the request (an unknown field never holds)."""
    field_name = condition.get("Field")
    if field_name == "path-pattern":
        return any(_wildcard(p, request.path, True) for p in _values(condition, "PathPatternConfig"))
    if field_name == "host-header":
        return any(_wildcard(p, request.host, False) for p in _values(condition, "HostHeaderConfig"))
    if field_name == "http-header":
        config = condition.get("HttpHeaderConfig") or {}
        value = request.headers.get(str(config.get("HttpHeaderName", "")).lower())
        return value is not None and any(_wildcard(p, value, False) for p in config.get("Values") or [])
    if field_name == "http-request-method":
        return request.method in _values(condition, "HttpRequestMethodConfig")
    if field_name == "query-string":
        pairs = parse_qsl(urlsplit(request.target).query, keep_blank_values=True)
        return any(
            any(
                (want.get("Key") is None or _wildcard(str(want["Key"]), key, False))
                and _wildcard(str(want.get("Value", "")), value, False)
                for key, value in pairs
            )
            for want in _values(condition, "QueryStringConfig")
        )
    if field_name == "source-ip":
        return any(_in_network(request.source_ip, c) for c in _values(condition, "SourceIpConfig"))
    return False


def decide_action(rules: list[Rule], request: RequestFacts) -> dict[str, Any] | None:
    """Return the action the listener takes for the request: first matching rule, then the default."""
    ordered = sorted(rules, key=lambda r: (r.priority is None, r.priority or 0))
    for rule in ordered:
        if all(matches_condition(c, request) for c in rule.conditions):
            for action in rule.actions:
                if action.get("Type") in ("forward", "fixed-response", "redirect"):
                    return action
            return None
    return None


def choose_target_group(action: dict[str, Any], rng: random.Random) -> str | None:
    """Return the target group ARN a forward action sends one request to (by weight), or None."""
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
    weighted = [(g["TargetGroupArn"], int(g.get("Weight", 1))) for g in groups if int(g.get("Weight", 1)) > 0]
    if weighted:
        return str(rng.choices([arn for arn, _ in weighted], weights=[w for _, w in weighted])[0])
    if groups:
        return None  # every weight is 0: nothing receives traffic
    arn = action.get("TargetGroupArn")
    return str(arn) if arn else None


def plan_redirect(config: dict[str, Any], request: RequestFacts, listener_port: int) -> tuple[int, str]:
    """Return (status, Location) of a redirect action; ``#{host}``-style placeholders keep the request's."""
    parts = urlsplit(request.target)
    here = {
        "protocol": "http",
        "host": request.host or "127.0.0.1",
        "port": str(listener_port),
        "path": parts.path.lstrip("/"),
        "query": parts.query,
    }

    def fill(key: str, default: str) -> str:
        text = str(config.get(key.capitalize(), default))
        for name, value in here.items():
            text = text.replace(f"#{{{name}}}", value)
        return text

    protocol, host, port = (
        fill("protocol", "#{protocol}").lower(),
        fill("host", "#{host}"),
        fill("port", "#{port}"),
    )
    path, query = fill("path", "/#{path}"), fill("query", "#{query}")
    location = f"{protocol}://{host}:{port}{path}" + (f"?{query}" if query else "")
    return (301 if config.get("StatusCode") == "HTTP_301" else 302), location
