"""One small HTTP server per worker host: metrics, the status page and a read-only JSON API.

Routes (GET only; every read goes to the state Redis, nothing is cached)::

    /metrics                  Prometheus exposition (all pool processes in multiprocess mode)
    /status                   the HTML status page (``worker.status_page``)
    /api/deployments          recent deployments, newest first
    /api/deployments/<id>     one deployment's summary, failure and progress events
    /healthz                  "ok"

It runs in a daemon thread of the worker's main process, one thread per request, at most
``max_threads`` at once: a connection beyond that gets 503 at once, and a client that sends nothing
is dropped after ``REQUEST_TIMEOUT_SECONDS``. Dependencies (where the store and the metrics registry
come from, the clock) are constructor parameters; the worker wires them in ``worker.signals``.

Who may ask (``Settings.status_allowed_hosts``, ``status_token``, ``status_max_threads``):

* the ``Host`` header, port left out, must be one of ``allowed_hosts`` (case-insensitive; ``*``
  allows any) or an IP address, else 421 (400 when it is missing or malformed): a DNS-rebinding
  page, which always sends its own host *name*, cannot read it, while scrapers that reach a
  worker by its address (Prometheus' DNS or Kubernetes discovery) need no list;
* with a ``token``, every route but ``/healthz`` (``/metrics`` too) needs
  ``Authorization: Bearer <token>``, else 401; without one, everything is open to whoever reaches
  the port (it binds 127.0.0.1 unless ``DEPLOY_AGENT_METRICS_HOST`` says otherwise).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from deploy_agent.adapters.redis_store import DeploymentStore
from deploy_agent.core.state import utcnow
from deploy_agent.settings import Settings
from deploy_agent.worker import status_page

log = logging.getLogger("deploy_agent.worker.http")

_JSON = "application/json"
_DEPLOYMENT_PREFIX = "/api/deployments/"
#: longer ids are not ours (deployment ids are short); refusing them keeps Redis keys bounded
MAX_ID_LENGTH = 256
#: a client that sends no complete request within this long is dropped (its thread freed)
REQUEST_TIMEOUT_SECONDS = 10.0
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: routes answered without a token (a liveness probe has none)
OPEN_PATHS = frozenset({"/healthz"})
_HOST_HEADER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?$")


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def metrics_registry() -> CollectorRegistry:
    """Return the registry to expose: a fresh multiprocess aggregate under prefork, else the default."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class StatusServer:
    """The worker host's HTTP server. ``start()`` binds and serves; ``stop()`` shuts it down."""

    def __init__(
        self,
        host: str,
        port: int,
        store: Callable[[], DeploymentStore],
        registry: Callable[[], CollectorRegistry] = metrics_registry,
        now: Callable[[], datetime] = utcnow,
        *,
        allowed_hosts: Iterable[str] = DEFAULT_ALLOWED_HOSTS,
        token: str | None = None,
        max_threads: int = 16,
    ) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.host, self.port = host, port
        self._store, self._registry, self._now = store, registry, now
        self.allowed_hosts = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self._token = token.encode() if token else None
        self.max_threads = max_threads
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def options(settings: Settings) -> dict[str, Any]:
        """Return the keyword arguments that apply the settings' access rules."""
        return {
            "allowed_hosts": settings.status_allowed_hosts,
            "token": settings.status_token,
            "max_threads": settings.status_max_threads,
        }

    def start(self) -> StatusServer:
        server = _Server((self.host, self.port), _Handler)
        server.app = self
        server.slots = threading.BoundedSemaphore(self.max_threads)
        self._server = server
        self.port = server.server_address[1]  # the real port when 0 was asked for
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="deploy-agent-http", daemon=True
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- access --------------------------------------------------------------------------------
    def refuse(self, hosts: Sequence[str], authorization: str | None, path: str) -> Response | None:
        """Return the refusal of a request with these ``Host`` headers and ``Authorization``, or None."""
        parsed = _HOST_HEADER.match(hosts[0].strip()) if len(hosts) == 1 else None
        if parsed is None:
            return _json(HTTPStatus.BAD_REQUEST, {"error": "one valid Host header is required"})
        name = parsed.group(1).lower()
        if "*" not in self.allowed_hosts and name not in self.allowed_hosts and not _is_ip(name):
            return _json(
                HTTPStatus.MISDIRECTED_REQUEST,
                {"error": "this host name is not served here (see DEPLOY_AGENT_STATUS_ALLOWED_HOSTS)"},
            )
        if self._token is None or path in OPEN_PATHS:
            return None
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return None
        return Response(
            HTTPStatus.UNAUTHORIZED,
            _JSON,
            json.dumps({"error": "a valid 'Authorization: Bearer <token>' header is required"}).encode(),
            {"Cache-Control": "no-store", "WWW-Authenticate": 'Bearer realm="deploy-agent"'},
        )

    # --- routes --------------------------------------------------------------------------------
    def respond(self, path: str) -> Response:
        """Return the response to a GET of ``path`` (the part of the URL before ``?``)."""
        if path == "/healthz":
            return Response(HTTPStatus.OK, "text/plain; charset=utf-8", b"ok")
        if path == "/metrics":
            return Response(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self._registry()))
        if path in ("/", "/status"):
            deployments = status_page.describe_recent(self._store(), self._now())
            page = status_page.render_status_page(deployments)
            return Response(
                HTTPStatus.OK,
                "text/html; charset=utf-8",
                page.encode(),
                {"Content-Security-Policy": status_page.CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"},
            )
        if path == "/api/deployments":
            return _json(
                HTTPStatus.OK, {"deployments": status_page.describe_recent(self._store(), self._now())}
            )
        if path.startswith(_DEPLOYMENT_PREFIX):
            deployment_id = unquote(path[len(_DEPLOYMENT_PREFIX) :])
            if not deployment_id or "/" in deployment_id or len(deployment_id) > MAX_ID_LENGTH:
                return _json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            found = status_page.describe_deployment(self._store(), deployment_id, self._now())
            if found is None:
                return _json(HTTPStatus.NOT_FOUND, {"error": "unknown deployment"})
            return _json(HTTPStatus.OK, found)
        return _json(HTTPStatus.NOT_FOUND, {"error": "not found"})


def _is_ip(name: str) -> bool:
    """Whether a Host name is an IP address (``[...]`` for IPv6), written the standard way."""
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") and name.endswith("]") else name)
    except ValueError:
        return False
    return True


def _json(status: HTTPStatus, payload: Any) -> Response:
    return Response(status, _JSON, json.dumps(payload).encode(), {"Cache-Control": "no-store"})


_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: 25\r\n\r\n" + b'{"error": "server busy"}\n'
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: StatusServer
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a thread while a slot is free; else answer 503 from here, at once, and close."""
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
                request.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            finally:
                self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "deploy-agent"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_SECONDS

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        try:
            refused = self.server.app.refuse(
                self.headers.get_all("Host") or [], self.headers.get("Authorization"), path
            )
            response = refused or self.server.app.respond(path)
        except redis.RedisError as exc:
            log.warning("state store unavailable: %s", exc)
            response = _json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "state store unavailable"})
        except Exception:
            log.exception("error serving %s", self.path)
            response = _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # Scrapes every few seconds would drown the worker's log at INFO.
        log.debug("%s " + format, self.address_string(), *args)
