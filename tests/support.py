"""What tests share: waiting until something holds, a free loopback port, a hand-moved clock.

Standard library only, so unit tests may use it without importing a real part.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: how much of the last value seen a timeout message shows
_SHOWN = 500


class WaitTimedOut(AssertionError):
    """A ``wait_until`` whose predicate never answered truthily in time (a failed test, not an error)."""


def wait_until(
    predicate: Callable[[], T],
    *,
    what: str,
    timeout: float = 30.0,
    interval: float = 0.05,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Return ``predicate()``'s first truthy value, asking every ``interval`` seconds.

    An exception of a type in ``ignoring`` counts as a falsy answer (a server that is not up yet);
    any other propagates. The predicate is asked once more at the deadline, so a slow host loses no
    answer to the last sleep. After ``timeout`` seconds: ``WaitTimedOut`` naming ``what`` and the
    last value (or ignored exception) seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except ignoring as exc:
            last: object = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            shown = repr(last)
            if len(shown) > _SHOWN:
                shown = shown[:_SHOWN] + "..."
            raise WaitTimedOut(f"timed out after {timeout:g} s waiting for {what} (last: {shown})")
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))


def free_port() -> int:
    """Return a loopback TCP port nothing listened on a moment ago (bound to 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManualClock:
    """A monotonic clock (seconds, as ``time.monotonic``) that moves only when a test sets ``now``."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
