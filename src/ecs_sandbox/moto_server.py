"""moto in server mode, in this process, so the scheduler can mutate the same backends it serves.

Also counts the API calls it answers (from any process) by wrapping its WSGI app, fails the calls
its ``faults`` rules pick (throttles, server errors; see ``faults``) before moto sees them, and plays
ECS's eventual consistency on DescribeServices after CreateService/UpdateService (``consistency``).
"""

from __future__ import annotations

import io
import logging
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import requests
from moto.moto_api import state_manager
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from . import moto_patches
from .consistency import ConsistencyWindow
from .faults import CallShape, FaultInjector, FaultKind, render_fault
from .realism import Realism

# moto's "manual" progression advances a task once it has been described `times` times; a count no
# client reaches keeps every task in the state the scheduler gives it.
_NEVER = 2**62
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/")
_REGION_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/")
_ACCESS_KEY = re.compile(r"Credential=([^/]+)/")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def pin_task_transitions() -> None:
    """Keep moto's ECS tasks in the state the scheduler sets (moto would otherwise walk them to STOPPED)."""
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": _NEVER}
    )


def _service_of(environ: dict[str, Any]) -> str:
    found = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return found.group(1) if found else "unknown"


def _caller_of(environ: dict[str, Any]) -> str:
    """Return the access key id the call was signed with: who called, when callers sign differently."""
    found = _ACCESS_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
    return found.group(1) if found else ""


def _region_of(environ: dict[str, Any]) -> str:
    """Return the region the call was signed for (quotas are per account and region)."""
    found = _REGION_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return found.group(1) if found else ""


def _form_of(environ: dict[str, Any]) -> dict[str, list[str]]:
    """Return the query-protocol parameters, from the query string or a form body (left readable)."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query or "form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
        return query
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    # The body was consumed: hand moto an identical one.
    environ["wsgi.input"] = io.BytesIO(body)
    return parse_qs(body.decode("utf-8", "replace"))


def _call_of(environ: dict[str, Any]) -> tuple[str, str, CallShape]:
    """Return (signing name, action, protocol shape) of an AWS call."""
    service = _service_of(environ)
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        shape = CallShape(
            "json",
            content_type=str(environ.get("CONTENT_TYPE", "")),
            query_compatible=bool(environ.get("HTTP_X_AMZN_QUERY_MODE")),
        )
        return service, target.rsplit(".", 1)[-1], shape
    form = _form_of(environ)
    if "Action" in form:
        version = form["Version"][0] if "Version" in form else None
        return service, form["Action"][0], CallShape("query", api_version=version, service=service)
    return service, "unknown", CallShape("rest")


def _answer_fault(
    environ: dict[str, Any], start_response: Callable[..., Any], kind: FaultKind, call: CallShape
) -> Iterable[bytes]:
    # Read the unread request body so a kept-alive connection stays in step.
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    response = render_fault(kind, call, str(uuid.uuid4()))
    start_response(response.status, [*response.headers, ("Content-Length", str(len(response.body)))])
    return [response.body]


class CountingMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer that counts the AWS calls moto answers by (service, action).

    Calls the fault injector fails are answered here, never reach moto and are not counted in
    ``calls``: the injector counts them. Calls that ``consistency`` watches are answered through it.
    """

    def __init__(
        self,
        ip_address: str = "127.0.0.1",
        port: int = 0,
        faults: FaultInjector | None = None,
        consistency: ConsistencyWindow | None = None,
    ) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self.faults = faults or FaultInjector()
        self.consistency = consistency or ConsistencyWindow()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.calls_by_caller: Counter[tuple[str, str, str]] = Counter()
        self._calls_lock = threading.Lock()

    def _server_entry(self) -> None:
        inner: WsgiApp = DomainDispatcherApplication(create_backend_app)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if not environ.get("PATH_INFO", "").startswith("/moto-api"):
                service, action, call = _call_of(environ)
                fault = self.faults.decide(service, action, region=_region_of(environ))
                if fault is not None:
                    return _answer_fault(environ, start_response, fault, call)
                key = (service, action)
                caller = _caller_of(environ)
                with self._calls_lock:
                    self.calls[key] += 1
                    self.calls_by_caller[(caller, *key)] += 1
                if self.consistency.watches(service, action):
                    return self.consistency.answer(environ, start_response, inner, action)
            return inner(environ, start_response)

        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    def snapshot_calls(self, caller: str | None = None) -> dict[tuple[str, str], int]:
        """Return a copy of the call counts so far (only those signed with access key ``caller``, if set)."""
        with self._calls_lock:
            if caller is None:
                return dict(self.calls)
            return {(s, a): n for (c, s, a), n in self.calls_by_caller.items() if c == caller}

    def reset_calls(self) -> None:
        """Forget the call counts."""
        with self._calls_lock:
            self.calls.clear()
            self.calls_by_caller.clear()


class MotoServer:
    """The sandbox's AWS endpoint: a counting moto server on a loopback port.

    ``profile`` sets ECS's consistency window (None or IDEALISED: every read is consistent);
    ``consistency_seed`` makes which reads are stale repeatable.
    """

    def __init__(
        self, port: int = 0, profile: Realism | None = None, consistency_seed: int | None = None
    ) -> None:
        self.faults = FaultInjector()
        self.consistency = ConsistencyWindow(profile, consistency_seed)
        self._server = CountingMotoServer(
            ip_address="127.0.0.1", port=port, faults=self.faults, consistency=self.consistency
        )
        self.endpoint_url = ""

    def start(self) -> str:
        """Patch moto (``moto_patches``), start serving and return the endpoint URL (``http://127.0.0.1:PORT``)."""
        moto_patches.apply()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        pin_task_transitions()
        return self.endpoint_url

    def use_profile(self, profile: Realism | None, consistency_seed: int | None = None) -> None:
        """Play ECS's consistency window of ``profile`` from the next call on (None: consistent)."""
        self.consistency.configure(profile, consistency_seed)

    def reset(self) -> None:
        """Wipe every moto backend, drop the fault rules and the remembered writes, re-pin the tasks."""
        self.faults.clear()
        self.consistency.clear()
        response = requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=30)
        response.raise_for_status()
        pin_task_transitions()

    def api_calls(self, caller: str | None = None) -> dict[tuple[str, str], int]:
        """Return the API calls moto answered so far, by (service, action); e.g. ("ecs", "DescribeServices").

        ``caller``: only the calls signed with that access key id (moto takes any), so a benchmark
        running several tools at once counts each one's own calls. Calls failed by ``faults`` are
        not among them: ``faults.injected()`` counts those.
        """
        return self._server.snapshot_calls(caller)

    def reset_api_calls(self) -> None:
        """Start counting API calls from zero."""
        self._server.reset_calls()

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()
