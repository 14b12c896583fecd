"""A local stand-in for ALB listeners: one HTTP proxy per ELBv2 listener that moto holds.

Every request reads its listener from moto at that moment (so ModifyListener, CreateRule and weight
changes apply to the very next request), takes the first rule that matches (``listener_rules``) or
the default action, and then:

- ``forward``: picks a target group by weight, then one of its *healthy* targets (round robin) as
  the sandbox's health checks judge them, and proxies the request to the target's loopback port.
  No healthy target in the chosen group -> 503 (a real ALB would fail open to the group's unhealthy
  targets; the sandbox keeps it simple). Upstream connection error -> 502, upstream timeout -> 504.
  Draining targets get no new requests; requests already in flight finish, because the scheduler
  stops a task's containers only after its deregistration delay.
- ``fixed-response`` and ``redirect``: answered here.

Each response names the target it came from in ``X-Sandbox-Target: <target group name>/<port>``, so
tests can measure how traffic was split. Each listener, created at any time, gets its own loopback
port within a poll, or at once when ``url_for`` asks for it.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.backends import get_backend

from .listener_rules import RequestFacts, Rule, choose_target_group, decide_action, plan_redirect
from .target_health import TargetHealthBook

log = logging.getLogger(__name__)
TARGET_HEADER = "X-Sandbox-Target"
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}


def read_rules(listener: Any) -> list[Rule]:
    """Return a moto listener's rules as plain data, its default action last (priority None)."""
    rules = [
        Rule(int(rule.priority), list(rule.conditions or []), [dict(a.data) for a in rule.actions])
        for rule in list(listener._non_default_rules.values())
    ]
    return [*rules, Rule(None, [], [dict(a.data) for a in listener.default_actions])]


def target_group_name(arn: str) -> str:
    """Return a target group's name from its ARN (``...:targetgroup/NAME/ID``)."""
    parts = arn.split(":targetgroup/", 1)
    return parts[1].split("/", 1)[0] if len(parts) == 2 else arn


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # socketserver's 5 drops connections under a burst of clients

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sandbox load balancer: connection from %s ended badly", client_address, exc_info=True)


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
        self._rng = random.Random()  # noqa: S311 - traffic split, not security
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def url_for(self, listener_arn: str) -> str:
        """Return ``http://127.0.0.1:PORT`` of the listener's proxy, opening it now if it is new.

        Raises KeyError when moto has no such listener.
        """
        with self._lock:
            server = self._servers.get(listener_arn)
        if server is None:
            self.sync()
            with self._lock:
                server = self._servers[listener_arn]
        return f"http://127.0.0.1:{server.server_address[1]}"

    def urls(self) -> dict[str, str]:
        """Return every listener's proxy URL, by listener ARN."""
        with self._lock:
            return {arn: f"http://127.0.0.1:{s.server_address[1]}" for arn, s in self._servers.items()}

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
        with self._sync_lock, self._lock:
            servers, self._servers = self._servers, {}
        for server in servers.values():
            server.shutdown()
            server.server_close()

    def sync(self) -> None:
        """Open a proxy for each new listener and close those of deleted listeners."""
        with self._sync_lock:
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
                server = _Server(("127.0.0.1", self.requested_ports.get(arn, 0)), self._handler(arn))
                threading.Thread(
                    target=server.serve_forever, args=(0.05,), name="sandbox-lb-listener", daemon=True
                ).start()
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

    def decide(self, listener_arn: str, request: RequestFacts) -> dict[str, Any] | None:
        """Return the action the listener takes for a request now (None: the listener is gone)."""
        listener = self._listeners().get(listener_arn)
        return decide_action(read_rules(listener), request) if listener is not None else None

    def pick_target(self, action: dict[str, Any]) -> tuple[str | None, int | None]:
        """Return (target group ARN, healthy target port) a forward action sends the next request to."""
        group = choose_target_group(action, self._rng)
        return group, self.health.next_port(group) if group else None

    def _handler(self, listener_arn: str) -> type[BaseHTTPRequestHandler]:
        balancer = self

        class Proxy(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed ACK
            timeout = 60  # an idle keep-alive connection does not hold its thread forever

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _proxy(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                facts = RequestFacts(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.client_address[0],
                )
                action = balancer.decide(listener_arn, facts)
                kind = (action or {}).get("Type")
                if action is None:
                    self._reply(503, b"503 Service Temporarily Unavailable: no listener\n", [])
                elif kind == "fixed-response":
                    config = action.get("FixedResponseConfig") or {}
                    content_type = [("Content-Type", str(config.get("ContentType", "text/plain")))]
                    message = str(config.get("MessageBody", "")).encode()
                    self._reply(int(config.get("StatusCode", 200)), message, content_type)
                elif kind == "redirect":
                    port = int(self.connection.getsockname()[1])
                    status, location = plan_redirect(action.get("RedirectConfig") or {}, facts, port)
                    self._reply(status, b"", [("Location", location)])
                else:
                    self._forward(action, body)

            def _forward(self, action: dict[str, Any], body: bytes | None) -> None:
                group, port = balancer.pick_target(action)
                if group is None or port is None:
                    name = target_group_name(group) if group else "-"
                    message = f"503 Service Temporarily Unavailable: no healthy target in {name}\n"
                    self._reply(503, message.encode(), [])
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=balancer.timeout_seconds)
                here = [(TARGET_HEADER, f"{target_group_name(group)}/{port}")]
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    headers["X-Forwarded-For"] = self.client_address[0]
                    headers["X-Forwarded-Proto"] = "http"
                    headers["X-Forwarded-Port"] = str(self.connection.getsockname()[1])
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
                    self._reply(response.status, payload, kept + here)
                except TimeoutError:
                    self._reply(504, b"504 Gateway Time-out\n", here)
                except (OSError, http.client.HTTPException):
                    self._reply(502, b"502 Bad Gateway\n", here)
                finally:
                    upstream.close()

            def _reply(self, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                length = str(len(payload))
                for key, value in headers:
                    if key.lower() != "content-length":
                        self.send_header(key, value)
                    elif self.command == "HEAD":
                        length = value  # a HEAD answer announces the length of the body it leaves out
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _proxy

        return Proxy
