"""AWS fault injection for the sandbox's moto server: throttles and server errors, shaped as AWS sends them.

The moto server's WSGI wrapper asks a ``FaultInjector`` about every AWS call before moto sees it;
when a rule fires, the wrapper answers with ``render_fault`` instead of passing the call on.

What a fault looks like on the wire, by the protocol the request spoke:

- JSON (``X-Amz-Target``; ECS, ECR, Logs, Secrets Manager, and CloudWatch, which botocore calls
  with awsJson1_0 + ``x-amzn-query-mode``): the request's content type, ``x-amzn-ErrorType`` and
  ``{"__type": CODE, "message": ...}``. A query-compatible request (CloudWatch) also gets
  ``x-amzn-query-error: Throttling;Sender``, which botocore turns into the code ``Throttling``.
- query (``Action=`` form; ELBv2, STS, EC2-style): ``text/xml``
  ``<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>...``.
- anything else (rest-json): like JSON, with ``application/json``.

Kinds: ``throttle`` is 400 ``ThrottlingException`` (JSON) / ``Throttling`` (query); ``server_error``
is 500 ``InternalFailure``; ``unavailable`` is 503 ``ServiceUnavailable``. botocore's standard and
adaptive retry modes retry all three (throttling codes; transient 500/503 statuses).

API quotas (opt-in, ``Realism.quotas``): ``use_quotas(QuotaBook())`` makes ``decide`` throttle a
call whose token bucket is empty (``quotas``), before any rule is tried; such throttles are counted
in ``injected()`` like the rules' own. Buckets are per account and Region: ``decide`` takes the
call's region (from its SigV4 credential scope) when the server passes it, else one bucket set.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from typing import Literal
from xml.sax.saxutils import escape

from .quotas import QuotaBook
from .realism import Realism

FaultKind = Literal["throttle", "server_error", "unavailable"]
Protocol = Literal["json", "query", "rest"]

#: boto3 client names whose SigV4 signing name (what the server sees) differs.
_SIGNING_NAMES = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing", "cloudwatch": "monitoring"}


@dataclass(frozen=True)
class _Error:
    status: str
    json_code: str
    query_code: str
    fault_type: Literal["Sender", "Receiver"]
    message: str


_ERRORS: dict[FaultKind, _Error] = {
    "throttle": _Error("400 Bad Request", "ThrottlingException", "Throttling", "Sender", "Rate exceeded"),
    "server_error": _Error(
        "500 Internal Server Error",
        "InternalFailure",
        "InternalFailure",
        "Receiver",
        "The request processing has failed because of an unknown error, exception or failure.",
    ),
    "unavailable": _Error(
        "503 Service Unavailable",
        "ServiceUnavailable",
        "ServiceUnavailable",
        "Receiver",
        "The request has failed due to a temporary failure of the server.",
    ),
}


def signing_name(service: str) -> str:
    """Return the name the server sees for a boto3 service name (``elbv2`` -> ``elasticloadbalancing``)."""
    return _SIGNING_NAMES.get(service, service)


@dataclass(frozen=True)
class FaultRule:
    """Which calls fail and how.

    ``service`` is a boto3 client name or a signing name (``ecs``, ``elbv2``/``elasticloadbalancing``,
    ``cloudwatch``/``monitoring``); ``action`` an API action (``DescribeServices``); None matches any.
    ``every=N`` fails every Nth matching call (N, 2N, ...); ``probability`` fails a matching call
    at random; with neither, every matching call fails. ``times`` caps how many faults the rule injects.
    """

    service: str | None
    action: str | None
    kind: FaultKind
    every: int = 0
    probability: float = 0.0
    times: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in _ERRORS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(_ERRORS)}")
        if self.every < 0:
            raise ValueError("every must be >= 0")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 (or None for no limit)")

    def matches(self, service: str, action: str) -> bool:
        """Return whether a call to ``service``/``action`` (signing name, action name) is in scope."""
        return (self.service is None or signing_name(self.service) == service) and (
            self.action is None or self.action == action
        )


@dataclass
class _RuleState:
    rule: FaultRule
    matched: int = 0
    fired: int = 0

    def fires(self, rng: random.Random) -> bool:
        """Count one matching call and return whether the rule fails it."""
        if self.rule.times is not None and self.fired >= self.rule.times:
            return False
        self.matched += 1
        if self.rule.every and self.matched % self.rule.every:
            return False
        if self.rule.probability and rng.random() >= self.rule.probability:
            return False
        self.fired += 1
        return True


class FaultInjector:
    """Rules deciding which AWS calls fail; thread-safe (the moto server answers on many threads).

    Rules are tried in the order they were added; the first that fires decides the call.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - fault timing, not cryptography
        self._rules: list[_RuleState] = []
        self._injected: dict[tuple[str, str, FaultKind], int] = {}
        self._lock = threading.Lock()
        self.quotas: QuotaBook | None = None

    def use_quotas(self, quotas: QuotaBook | None) -> None:
        """Start throttling calls past AWS's API quotas with ``quotas`` (None: no quotas)."""
        self.quotas = quotas

    def apply_profile(self, profile: Realism) -> None:
        """Turn API quotas on or off as ``profile.quotas`` says (fresh, full buckets when on)."""
        self.use_quotas(QuotaBook() if profile.quotas else None)

    def add(self, rule: FaultRule) -> FaultRule:
        """Start applying ``rule`` (after the rules already added) and return it."""
        with self._lock:
            self._rules.append(_RuleState(rule))
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Stop applying ``rule`` (every copy of it); its injected faults stay counted."""
        with self._lock:
            self._rules = [state for state in self._rules if state.rule != rule]

    def reseed(self, seed: int) -> None:
        """Restart the random choice of which calls a rule fails from ``seed`` (repeatable runs)."""
        with self._lock:
            self._rng.seed(seed)

    def clear(self) -> None:
        """Drop every rule, forget the injected-fault counts and refill the quota buckets.

        Quotas stay on or off: they are the profile's, not a rule.
        """
        with self._lock:
            self._rules.clear()
            self._injected.clear()
        if self.quotas is not None:
            self.quotas.refill()

    def injected(self) -> dict[tuple[str, str, FaultKind], int]:
        """Return the faults injected so far, by (signing name, action, kind)."""
        with self._lock:
            return dict(self._injected)

    def decide(self, service: str, action: str, region: str = "", account: str = "") -> FaultKind | None:
        """Return the fault to answer a call with (and count it), or None to let moto answer."""
        quotas = self.quotas
        if quotas is not None and not quotas.take(service, action, region, account):
            with self._lock:
                key: tuple[str, str, FaultKind] = (service, action, "throttle")
                self._injected[key] = self._injected.get(key, 0) + 1
            return "throttle"
        with self._lock:
            for state in self._rules:
                if state.rule.matches(service, action) and state.fires(self._rng):
                    key = (service, action, state.rule.kind)
                    self._injected[key] = self._injected.get(key, 0) + 1
                    return state.rule.kind
        return None


@dataclass(frozen=True)
class CallShape:
    """What an AWS call's error answer depends on: its protocol and how it was sent."""

    protocol: Protocol
    content_type: str = ""
    query_compatible: bool = False
    api_version: str | None = None
    service: str = ""


@dataclass(frozen=True)
class FaultResponse:
    """A ready WSGI answer: status line, headers, body."""

    status: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def render_fault(kind: FaultKind, call: CallShape, request_id: str) -> FaultResponse:
    """Return the answer AWS gives for ``kind`` in the protocol ``call`` spoke."""
    error = _ERRORS[kind]
    if call.protocol == "query":
        return _query_error(error, call, request_id)
    headers = [
        ("Content-Type", call.content_type or "application/json"),
        ("x-amzn-RequestId", request_id),
        ("x-amzn-ErrorType", error.json_code),
    ]
    if call.query_compatible:
        headers.append(("x-amzn-query-error", f"{error.query_code};{error.fault_type}"))
    body = json.dumps({"__type": error.json_code, "message": error.message}).encode()
    return FaultResponse(error.status, headers, body)


def _query_error(error: _Error, call: CallShape, request_id: str) -> FaultResponse:
    namespace = (
        f' xmlns="http://{call.service}.amazonaws.com/doc/{escape(call.api_version)}/"'
        if call.api_version and call.service
        else ""
    )
    body = (
        f"<ErrorResponse{namespace}><Error><Type>{error.fault_type}</Type>"
        f"<Code>{error.query_code}</Code><Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    return FaultResponse(error.status, headers, body.encode())
