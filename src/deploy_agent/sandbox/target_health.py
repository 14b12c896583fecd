"""Target health as the sandbox's ELB judges it, by real HTTP checks, and shown through moto.

The scheduler registers each task's target here (target group ARN + target id -> loopback port); a
checker thread probes ``http://127.0.0.1:PORT<HealthCheckPath>``; moto's ``describe_target_health``
reports the state kept here (initial / healthy / unhealthy / draining) instead of its fixed "healthy".
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

_REASONS: dict[str, tuple[str | None, str | None]] = {
    "initial": ("Elb.RegistrationInProgress", "Target registration is in progress"),
    "healthy": (None, None),
    "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
}


@dataclass
class Target:
    """One registered target: where it really listens and what its checks have seen."""

    target_group_arn: str
    target_id: str
    port: int
    path: str
    matcher: str
    registered_at: float = field(default_factory=time.monotonic)
    state: str = "initial"
    successes: int = 0
    failures: int = 0
    last_failure: str = ""


def matches(status: int, matcher: str) -> bool:
    """Return whether an HTTP status satisfies an ELB matcher such as "200", "200,302" or "200-299"."""
    for part in matcher.split(","):
        low, _, high = part.strip().partition("-")
        if low and int(low) <= status <= int(high or low):
            return True
    return False


def probe(port: int, path: str, matcher: str, timeout: float) -> str:
    """Return "" when GET 127.0.0.1:port/path passes, else the ELB-style failure reason."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path or "/")
        status = connection.getresponse().status
    except TimeoutError:
        return "Request timed out"
    except OSError:
        return "Connection refused"
    finally:
        connection.close()
    return "" if matches(status, matcher) else f"Health checks failed with these codes: [{status}]"


class TargetHealthBook:
    """Thread-safe store of every target's real health, and the HTTP checker that keeps it true."""

    def __init__(
        self,
        interval_seconds: float = 0.2,
        healthy_threshold: int = 2,
        unhealthy_threshold: int = 2,
        grace_seconds: float = 1.0,
        timeout_seconds: float = 1.0,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self.grace_seconds = grace_seconds
        self.timeout_seconds = timeout_seconds
        self._targets: dict[tuple[str, str], Target] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, target_group_arn: str, target_id: str, port: int, path: str, matcher: str) -> None:
        """Start checking a target (state "initial")."""
        with self._lock:
            self._targets[(target_group_arn, target_id)] = Target(
                target_group_arn, target_id, port, path, matcher
            )

    def drain(self, target_group_arn: str, target_id: str) -> None:
        """Mark a target draining: no new traffic, no more checks."""
        with self._lock:
            target = self._targets.get((target_group_arn, target_id))
            if target is not None:
                target.state = "draining"

    def remove(self, target_group_arn: str, target_id: str) -> None:
        """Forget a target."""
        with self._lock:
            self._targets.pop((target_group_arn, target_id), None)

    def clear(self) -> None:
        """Forget every target."""
        with self._lock:
            self._targets.clear()

    def get(self, target_group_arn: str, target_id: str) -> Target | None:
        """Return the target, if registered here."""
        with self._lock:
            return self._targets.get((target_group_arn, target_id))

    def healthy_ports(self, target_group_arn: str) -> list[int]:
        """Return the loopback ports of the group's healthy targets, in registration order."""
        with self._lock:
            return [
                t.port
                for (arn, _), t in self._targets.items()
                if arn == target_group_arn and t.state == "healthy"
            ]

    def check_once(self) -> None:
        """Probe every target that is not draining once and move its state by the thresholds."""
        with self._lock:
            targets = [t for t in self._targets.values() if t.state != "draining"]
        for target in targets:
            failure = probe(target.port, target.path, target.matcher, self.timeout_seconds)
            with self._lock:
                self._record(target, failure)

    def _record(self, target: Target, failure: str) -> None:
        if target.state == "draining":
            return
        if not failure:
            target.successes, target.failures = target.successes + 1, 0
            if target.successes >= self.healthy_threshold:
                target.state = "healthy"
            return
        if target.state == "initial" and time.monotonic() - target.registered_at < self.grace_seconds:
            return  # the app may still be starting: ELB failures inside the grace period do not count
        target.successes, target.failures, target.last_failure = 0, target.failures + 1, failure
        if target.failures >= self.unhealthy_threshold:
            target.state = "unhealthy"

    def start(self) -> None:
        """Start the checker thread and make moto report the health kept here."""
        _install(self)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the checker thread and restore moto's own health reporting."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        _uninstall(self)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.check_once()

    def health_status(self, group: FakeTargetGroup, target: dict[str, Any], status: FakeHealthStatus) -> None:
        """Overwrite moto's answer for a target this book knows."""
        known = self.get(group.arn, target["Id"])
        if known is None or target["Id"] not in group.targets:
            return
        reason: str | None
        description: str | None
        if known.state == "unhealthy":
            reason, description = "Target.ResponseCodeMismatch", known.last_failure
            if not known.last_failure.startswith("Health checks failed"):
                reason = (
                    "Target.Timeout" if "timed out" in known.last_failure else "Target.FailedHealthChecks"
                )
        else:
            reason, description = _REASONS[known.state]
        status.status, status.reason, status.description = known.state, reason, description


_ORIGINAL_HEALTH_FOR = FakeTargetGroup.health_for
_installed: list[TargetHealthBook] = []


def _health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
    status: FakeHealthStatus = _ORIGINAL_HEALTH_FOR(self, target, ec2_backend)
    for book in _installed:
        book.health_status(self, target, status)
    return status


def _install(book: TargetHealthBook) -> None:
    _installed.append(book)
    FakeTargetGroup.health_for = _health_for  # type: ignore[method-assign]


def _uninstall(book: TargetHealthBook) -> None:
    if book in _installed:
        _installed.remove(book)
    if not _installed:
        FakeTargetGroup.health_for = _ORIGINAL_HEALTH_FOR  # type: ignore[method-assign]
