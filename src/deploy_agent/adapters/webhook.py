"""Deliver notifications to webhook URLs (JSON POST). Errors become ``NotificationFailed``.

Requests go through :mod:`deploy_agent.adapters.outbound`: the policy's ``webhook_hosts`` and
address classes apply (except to the worker's own configured webhook URLs), redirects are not
followed, the environment's proxies and ``.netrc`` are ignored, and one deadline bounds the whole
request. Error texts name the webhook's host only (its URL may carry a token).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from deploy_agent.adapters.outbound import Outbound
from deploy_agent.adapters.outbound_rules import OutboundFailed, OutboundRefused, url_host
from deploy_agent.core.errors import DeployError


class NotificationFailed(DeployError):
    kind = "notification_failed"


class WebhookSender:
    """POSTs one JSON document per call; anything but a 2xx answer is a failure."""

    def __init__(self, outbound: Outbound | None = None, timeout_seconds: float = 5.0) -> None:
        self.outbound = outbound if outbound is not None else Outbound()
        self._timeout = timeout_seconds

    def post(self, url: str, payload: Mapping[str, Any]) -> None:
        where = f"webhook to {url_host(url)}"
        try:
            response = self.outbound.request(
                "POST",
                url,
                timeout_seconds=self._timeout,
                hosts="webhook_hosts",
                body=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
        except OutboundRefused as exc:
            raise NotificationFailed(f"{where}: refused: {exc.message}") from None
        except OutboundFailed as exc:
            raise NotificationFailed(f"{where}: {exc.reason}") from None
        if not 200 <= response.status < 300:
            raise NotificationFailed(f"{where}: HTTP {response.status}")
