"""Deliver notifications to webhook URLs (JSON POST). Errors become ``NotificationFailed``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests

from deploy_agent.core.errors import DeployError


class NotificationFailed(DeployError):
    kind = "notification_failed"


class WebhookSender:
    """POSTs one JSON document per call; anything but a 2xx answer is a failure."""

    def __init__(self, session: requests.Session | None = None, timeout_seconds: float = 5.0) -> None:
        self._session = session or requests.Session()
        self._timeout = timeout_seconds

    def post(self, url: str, payload: Mapping[str, Any]) -> None:
        try:
            response = self._session.post(
                url,
                data=json.dumps(payload),
                headers={"Content-Type": "application/json", "User-Agent": "deploy-agent"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise NotificationFailed(f"webhook {url}: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise NotificationFailed(f"webhook {url}: HTTP {response.status_code}")
