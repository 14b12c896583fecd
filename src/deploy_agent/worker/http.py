"""One small HTTP server per worker host: metrics, the status page and a read-only JSON API.

Routes (GET only; every read goes to the state Redis, nothing is cached)::

    /metrics                  Prometheus exposition (all pool processes in multiprocess mode)
    /status                   the HTML status page (``worker.status_page``)
    /api/deployments          recent deployments, newest first
    /api/deployments/<id>     one deployment's summary, failure and progress events
    /healthz                  "ok"

It runs in a daemon thread of the worker's main process, one thread per request. Dependencies
(where the store and the metrics registry come from, the clock) are constructor parameters; the
worker wires them in ``worker.signals``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from deploy_agent.core.state import utcnow
from deploy_agent.tasks.store import DeploymentStore
from deploy_agent.worker import status_page

log = logging.getLogger("deploy_agent.worker.http")

_JSON = "application/json"
_DEPLOYMENT_PREFIX = "/api/deployments/"
#: longer ids are not ours (deployment ids are short); refusing them keeps Redis keys bounded
MAX_ID_LENGTH = 256


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
    ) -> None:
        self.host, self.port = host, port
        self._store, self._registry, self._now = store, registry, now
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> StatusServer:
        server = _Server((self.host, self.port), _Handler)
        server.app = self
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


def _json(status: HTTPStatus, payload: Any) -> Response:
    return Response(status, _JSON, json.dumps(payload).encode(), {"Cache-Control": "no-store"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: StatusServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "deploy-agent"
    sys_version = ""

    def do_GET(self) -> None:
        try:
            response = self.server.app.respond(urlsplit(self.path).path)
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
