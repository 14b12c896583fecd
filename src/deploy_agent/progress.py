"""A deployment's progress on a terminal: its events as lines, followed until its result arrives."""

from __future__ import annotations

import sys
import time
from typing import Any


def follow(async_result: Any, deployment_id: str | None, timeout: float) -> dict[str, Any]:
    """Print each progress event as it happens until the final result arrives."""
    from deploy_agent.tasks.runtime import get_runtime

    store = get_runtime().store
    seen = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if deployment_id:
            for event in store.events(deployment_id, seen):
                seen += 1
                print(format_event(event), file=sys.stderr)
        if async_result.ready():
            final: dict[str, Any] = async_result.get(timeout=5)
            if deployment_id:
                for event in store.events(deployment_id, seen):
                    print(format_event(event), file=sys.stderr)
            return final
        time.sleep(0.2)
    raise SystemExit(f"no result within {timeout:.0f} s")


def format_event(event: dict[str, Any]) -> str:
    """Return one event as a line: time, stage, kind and its fields."""
    skip = {"at", "deployment_id", "event", "stage"}
    details = " ".join(f"{k}={v}" for k, v in event.items() if k not in skip and v is not None)
    stage = event.get("stage") or "-"
    return f"{event.get('at', '')[11:23]} {stage:<12} {event.get('event')} {details}".rstrip()
