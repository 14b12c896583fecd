"""A local stand-in for ALB listeners: one HTTP proxy per ELBv2 listener that moto holds.

Each request reads the listener's default action from moto at that moment (so weight changes apply
to the next request), picks a target group by weight, then a target that the sandbox's health checks
call healthy, round-robin, and proxies the request to its loopback port. Listener rules and
connection draining are not modelled yet: ``_forward_action`` is where rules would be matched.
"""

from __future__ import annotations

import http.client
import itertools
import logging
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.backends import get_backend

from .target_health import TargetHealthBook

log = logging.getLogger(__name__)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}


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


class LocalLoadBalancer:
    """Serves every ELBv2 listener in moto on its own loopback port; new listeners within a poll."""

    def __init__(
        self,
        health: TargetHealthBook,
        account: str = "123456789012",
        regions: tuple[str, ...] = ("us-east-1",),
        poll_seconds: float = 0.1,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.health = health
        self.account = account
        self.regions = regions
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.requested_ports: dict[str, int] = {}
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._turns: dict[str, itertools.count[int]] = {}
        self._rng = random.Random()  # noqa: S311 - traffic split, not security
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def url_for(self, listener_arn: str) -> str:
        """Return ``http://127.0.0.1:PORT`` of the listener's proxy (KeyError if it has none yet)."""
        with self._lock:
            return f"http://127.0.0.1:{self._servers[listener_arn].server_address[1]}"

    def urls(self) -> dict[str, str]:
        """Return every listener's proxy URL, by listener ARN."""
        with self._lock:
            arns = list(self._servers)
        return {arn: self.url_for(arn) for arn in arns}

    def start(self) -> LocalLoadBalancer:
        """Start following moto's listeners; return self."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-lb", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following listeners and close every proxy."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.close_all()

    def close_all(self) -> None:
        """Close every proxy (they come back for listeners that still exist)."""
        with self._lock:
            servers, self._servers = self._servers, {}
        for server in servers.values():
            server.shutdown()
            server.server_close()

    def sync(self) -> None:
        """Open a proxy for each new listener and close those of deleted listeners."""
        listeners = self._listeners()
        with self._lock:
            gone = [arn for arn in self._servers if arn not in listeners]
            new = [arn for arn in listeners if arn not in self._servers]
        for arn in gone:
            with self._lock:
                server = self._servers.pop(arn)
            server.shutdown()
            server.server_close()
        for arn in new:
            server = ThreadingHTTPServer(("127.0.0.1", self.requested_ports.get(arn, 0)), self._handler(arn))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name="sandbox-lb-listener", daemon=True).start()
            with self._lock:
                self._servers[arn] = server

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:
                log.exception("sandbox load balancer: listener sync failed")
            self._stop.wait(self.poll_seconds)

    def _listeners(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for region in self.regions:
            backend = get_backend("elbv2")[self.account][region]
            for balancer in list(backend.load_balancers.values()):
                found.update(dict(balancer.listeners))
        return found

    def _forward_action(self, listener_arn: str) -> dict[str, Any] | None:
        listener = self._listeners().get(listener_arn)
        if listener is None:
            return None
        for action in listener.default_actions:
            if action.type == "forward":
                return dict(action.data)
        return None

    def pick_port(self, listener_arn: str) -> int | None:
        """Return the loopback port of the healthy target the next request goes to, or None."""
        action = self._forward_action(listener_arn)
        group = choose_target_group(action, self._rng) if action else None
        ports = self.health.healthy_ports(group) if group else []
        if not ports:
            return None
        with self._lock:
            turn = self._turns.setdefault(group or "", itertools.count())
        return ports[next(turn) % len(ports)]

    def _handler(self, listener_arn: str) -> type[BaseHTTPRequestHandler]:
        balancer = self

        class Proxy(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _proxy(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                port = balancer.pick_port(listener_arn)
                if port is None:
                    self._reply(503, b"503 Service Temporarily Unavailable: no healthy target\n", [])
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=balancer.timeout_seconds)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
                    self._reply(response.status, payload, kept)
                except (OSError, http.client.HTTPException):
                    self._reply(502, b"502 Bad Gateway\n", [])
                finally:
                    upstream.close()

            def _reply(self, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _proxy

        return Proxy
