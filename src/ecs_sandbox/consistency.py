"""ECS's eventual consistency, played at the moto server's door: stale DescribeServices after a write.

AWS: "The Amazon ECS API follows an eventual consistency model ... the result of an API command you
run that affects your Amazon ECS resources might not be immediately visible to all subsequent
commands you run" (Amazon ECS API Reference, "Eventual consistency in the Amazon ECS API",
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/eventual-consistency.html); a service just
created may be answered ``failures: [{"arn": ..., "reason": "MISSING"}]`` by DescribeServices
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeServices.html, ``Failure``).

How: for ``window`` sandbox seconds after a CreateService or UpdateService answered by this server
(from any process: it sits in the server's WSGI app), each service in a DescribeServices answer is,
with probability ``stale_probability``, replaced by what DescribeServices said of it just before the
write -- or by a MISSING failure when the write created it. Other calls, other services and
the sandbox's own scheduler (it reads moto's backends in-process, never through HTTP) see the truth.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .realism import Realism

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
WRITES = frozenset({"CreateService", "UpdateService"})
READ = "DescribeServices"


@dataclass(frozen=True)
class Write:
    """A CreateService/UpdateService this server answered: when, and the service as it was before."""

    at: float
    before: dict[str, Any] | None  # None: the write created the service (a stale read is MISSING)


def plan_answer(
    answer: dict[str, Any],
    writes: dict[str, Write],
    now: float,
    window: float,
    draw: Callable[[], float],
    stale_probability: float,
    with_tags: bool,
) -> dict[str, Any]:
    """Return the DescribeServices answer a client sees: each service written within ``window`` is,
    when ``draw()`` falls under ``stale_probability``, its state before the write or MISSING."""
    services: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = list(answer.get("failures") or [])
    for service in answer.get("services") or []:
        write = writes.get(str(service.get("serviceArn")))
        if write is None or now - write.at >= window or draw() >= stale_probability:
            services.append(service)
        elif write.before is None:
            failures.append({"arn": service["serviceArn"], "reason": "MISSING"})
        else:
            old = dict(write.before)
            if not with_tags:
                old.pop("tags", None)  # the snapshot was taken with include=TAGS; this call did not ask
            services.append(old)
    return {**answer, "services": services, "failures": failures}


@dataclass
class _Reply:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status.startswith("2")


def _call(inner: WsgiApp, environ: dict[str, Any]) -> _Reply:
    """Return moto's whole answer to one request."""
    chunks: list[bytes] = []
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return chunks.append

    result = inner(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return _Reply(str(seen.get("status", "500")), list(seen.get("headers", [])), b"".join(chunks))


def _with_body(environ: dict[str, Any], body: bytes, action: str | None = None) -> dict[str, Any]:
    copy = dict(environ)
    copy["wsgi.input"] = io.BytesIO(body)
    copy["CONTENT_LENGTH"] = str(len(body))
    if action is not None:
        prefix = str(environ.get("HTTP_X_AMZ_TARGET", "")).rsplit(".", 1)[0]
        copy["HTTP_X_AMZ_TARGET"] = f"{prefix}.{action}"
    return copy


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


class ConsistencyWindow:
    """Remembers each service's state before a write and answers DescribeServices stale for a while."""

    def __init__(
        self,
        profile: Realism | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._writes: dict[str, Write] = {}
        self.window_seconds = 0.0
        self.stale_probability = 0.0
        self._rng = random.Random(seed)  # noqa: S311 - emulated staleness, not security
        self.configure(profile, seed)

    def configure(self, profile: Realism | None, seed: int | None = None) -> None:
        """Take the window (scaled) and the probability from a profile; None turns staleness off."""
        with self._lock:
            self.window_seconds = profile.scaled(profile.consistency_window_seconds) if profile else 0.0
            self.stale_probability = profile.consistency_stale_probability if profile else 0.0
            if seed is not None:
                self._rng.seed(seed)

    def watches(self, service: str, action: str) -> bool:
        """Return whether a call goes through this window (ECS's service writes and reads, when on)."""
        on = self.window_seconds > 0 and self.stale_probability > 0
        return on and service == "ecs" and (action in WRITES or action == READ)

    def clear(self) -> None:
        """Forget every write (for a moto reset)."""
        with self._lock:
            self._writes.clear()

    def answer(
        self, environ: dict[str, Any], start_response: Callable[..., Any], inner: WsgiApp, action: str
    ) -> Iterable[bytes]:
        """Answer one watched ECS call through moto, stale when the window says so."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        request = _json(body)
        if action == READ:
            reply = _call(inner, _with_body(environ, body))
            if reply.ok:
                reply.body = self._stale(reply.body, "TAGS" in (request.get("include") or []))
        else:
            before = self._before(inner, environ, request) if action == "UpdateService" else None
            reply = _call(inner, _with_body(environ, body))
            arn = (_json(reply.body).get("service") or {}).get("serviceArn") if reply.ok else None
            if arn:
                with self._lock:
                    self._forget_old()
                    self._writes[str(arn)] = Write(self._clock(), before)
        headers = [(k, v) for k, v in reply.headers if k.lower() != "content-length"]
        start_response(reply.status, [*headers, ("Content-Length", str(len(reply.body)))])
        return [reply.body]

    def _before(
        self, inner: WsgiApp, environ: dict[str, Any], request: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Return the service as DescribeServices shows it now (with tags), or None when it has none."""
        ask = {"services": [request.get("service", "")], "include": ["TAGS"]}
        if "cluster" in request:
            ask["cluster"] = request["cluster"]
        reply = _call(inner, _with_body(environ, json.dumps(ask).encode(), READ))
        services = _json(reply.body).get("services") or [] if reply.ok else []
        return dict(services[0]) if services else None

    def _stale(self, body: bytes, with_tags: bool) -> bytes:
        answer = _json(body)
        with self._lock:
            if not self._writes or "services" not in answer:
                return body
            seen = plan_answer(
                answer,
                self._writes,
                self._clock(),
                self.window_seconds,
                self._rng.random,
                self.stale_probability,
                with_tags,
            )
        return body if seen == answer else json.dumps(seen).encode()

    def _forget_old(self) -> None:
        now = self._clock()
        for arn in [a for a, w in self._writes.items() if now - w.at >= self.window_seconds]:
            del self._writes[arn]
