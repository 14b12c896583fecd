"""Target health as the sandbox's ALB judges it, by real HTTP checks, and shown through moto.

The scheduler registers each task's target here (target group ARN + target id -> loopback port); a
checker thread probes ``http://127.0.0.1:PORT<HealthCheckPath>``: a new target is ``initial`` until
``healthy_threshold`` checks pass in a row, ``unhealthy`` after ``unhealthy_threshold`` failures (not
counted within the grace period after registration). Deregistering a target (the scheduler does it
through moto, and so does anyone calling ``DeregisterTargets``) makes it ``draining``: it gets no new
requests, is no longer checked, and is forgotten after the target group's
``deregistration_delay.timeout_seconds`` -- AWS's untouched 300 s reads as "not set" and gives
``default_drain_seconds``, and every delay is capped at ``max_drain_seconds`` so tests stay fast.
A target already ``unhealthy`` when it is deregistered keeps showing ``unhealthy`` while it drains.
A target registered with ``probed=False`` (a virtual task's: nothing listens on its port) is
``healthy`` at once, is never checked and is never sent traffic; it drains like any other.
moto's ``describe_target_health`` reports the state kept here, with ELB's reason codes, and lists
draining targets as AWS does. An ALB that has no healthy target "fails open" to all of them; the
sandbox does not: no healthy target means no target.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

AWS_DEFAULT_DRAIN_SECONDS = 300.0
_DELAY = "deregistration_delay.timeout_seconds"
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
    drain_until: float | None = None  # set once deregistered
    probed: bool = True  # False: a virtual task's target, healthy without checks and sent no traffic

    @property
    def deregistered(self) -> bool:
        """Return whether the target was deregistered (it is draining or about to be forgotten)."""
        return self.drain_until is not None


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


def decide_drain_seconds(attribute: Any, default_seconds: float, max_seconds: float) -> float:
    """Return how long a deregistered target drains, from the target group's delay attribute."""
    try:
        seconds = float(attribute)
    except (TypeError, ValueError):
        seconds = AWS_DEFAULT_DRAIN_SECONDS
    if seconds == AWS_DEFAULT_DRAIN_SECONDS:
        seconds = default_seconds  # nobody chose a delay: the sandbox's own default
    return max(0.0, min(seconds, max_seconds))


class TargetHealthBook:
    """Thread-safe store of every target's real health, and the HTTP checker that keeps it true."""

    def __init__(
        self,
        interval_seconds: float = 0.2,
        healthy_threshold: int = 2,
        unhealthy_threshold: int = 2,
        grace_seconds: float = 1.0,
        timeout_seconds: float = 1.0,
        default_drain_seconds: float = 0.3,
        max_drain_seconds: float = 5.0,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self.grace_seconds = grace_seconds
        self.timeout_seconds = timeout_seconds
        self.default_drain_seconds = default_drain_seconds
        self.max_drain_seconds = max_drain_seconds
        self._targets: dict[tuple[str, str], Target] = {}
        self._turns: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(
        self, target_group_arn: str, target_id: str, port: int, path: str, matcher: str, probed: bool = True
    ) -> None:
        """Start checking a target (state "initial"); ``probed=False``: healthy at once, never checked."""
        target = Target(target_group_arn, target_id, port, path, matcher, probed=probed)
        if not probed:
            target.state = "healthy"
        with self._lock:
            self._targets[(target_group_arn, target_id)] = target

    def drain(self, target_group_arn: str, target_id: str, seconds: float) -> None:
        """Deregister a target: no new traffic, no more checks, forgotten after ``seconds``."""
        with self._lock:
            target = self._targets.get((target_group_arn, target_id))
            if target is None or target.deregistered:
                return
            target.drain_until = time.monotonic() + seconds
            if target.state != "unhealthy":
                target.state = "draining"

    def drain_seconds_for(self, group: FakeTargetGroup) -> float:
        """Return how long a target deregistered from the group drains."""
        attribute = (getattr(group, "attributes", None) or {}).get(_DELAY)
        return decide_drain_seconds(attribute, self.default_drain_seconds, self.max_drain_seconds)

    def is_draining(self, target_group_arn: str, target_id: str) -> bool:
        """Return whether a deregistered target is still within its deregistration delay."""
        self.sweep()
        with self._lock:
            target = self._targets.get((target_group_arn, target_id))
            return target is not None and target.deregistered

    def sweep(self) -> None:
        """Forget the targets whose deregistration delay is over."""
        now = time.monotonic()
        with self._lock:
            done = [k for k, t in self._targets.items() if t.drain_until is not None and t.drain_until <= now]
            for key in done:
                del self._targets[key]

    def remove(self, target_group_arn: str, target_id: str) -> None:
        """Forget a target."""
        with self._lock:
            self._targets.pop((target_group_arn, target_id), None)

    def clear(self) -> None:
        """Forget every target."""
        with self._lock:
            self._targets.clear()
            self._turns.clear()

    def get(self, target_group_arn: str, target_id: str) -> Target | None:
        """Return the target, if registered here."""
        with self._lock:
            return self._targets.get((target_group_arn, target_id))

    def draining_ids(self, target_group_arn: str) -> list[str]:
        """Return the ids of the group's targets that are deregistered but not yet forgotten."""
        with self._lock:
            return [
                t.target_id
                for (arn, _), t in self._targets.items()
                if arn == target_group_arn and t.deregistered
            ]

    def healthy_ports(self, target_group_arn: str) -> list[int]:
        """Return the loopback ports of the group's healthy probed targets, in registration order."""
        with self._lock:
            return [
                t.port
                for (arn, _), t in self._targets.items()
                if arn == target_group_arn and t.state == "healthy" and t.probed
            ]

    def next_port(self, target_group_arn: str) -> int | None:
        """Return the port of the group's healthy target a new request goes to (round robin), or None."""
        ports = self.healthy_ports(target_group_arn)
        if not ports:
            return None
        with self._lock:
            turn = self._turns.setdefault(target_group_arn, itertools.count())
            return ports[next(turn) % len(ports)]

    def check_once(self) -> None:
        """Probe every target that is not deregistered once and move its state by the thresholds."""
        self.sweep()
        with self._lock:
            targets = [t for t in self._targets.values() if t.probed and not t.deregistered]
        for target in targets:
            failure = probe(target.port, target.path, target.matcher, self.timeout_seconds)
            with self._lock:
                self._record(target, failure)

    def _record(self, target: Target, failure: str) -> None:
        if target.deregistered:
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
        """Start the checker thread and make moto report (and deregister) through this book."""
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
        if known is None or (target["Id"] not in group.targets and not known.deregistered):
            return
        if known.drain_until is not None and known.drain_until <= time.monotonic():
            return  # drained: moto's own "unused / Target.NotRegistered" is the truth now
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
_ORIGINAL_DEREGISTER = FakeTargetGroup.deregister
_ORIGINAL_DESCRIBE_HEALTH = ELBv2Backend.describe_target_health
_installed: list[TargetHealthBook] = []


def _health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
    status: FakeHealthStatus = _ORIGINAL_HEALTH_FOR(self, target, ec2_backend)
    for book in _installed:
        book.health_status(self, target, status)
    return status


def _deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    _ORIGINAL_DEREGISTER(self, targets)
    for book in _installed:
        seconds = book.drain_seconds_for(self)
        for target in targets:
            book.drain(self.arn, str(target["Id"]), seconds)


def _describe_target_health(
    self: ELBv2Backend, target_group_arn: str, targets: list[dict[str, Any]]
) -> list[FakeHealthStatus]:
    statuses: list[FakeHealthStatus] = _ORIGINAL_DESCRIBE_HEALTH(self, target_group_arn, targets)
    group = self.target_groups.get(target_group_arn)
    if targets or group is None:
        return statuses
    # AWS lists draining targets with the registered ones; moto forgets them on deregistration.
    for book in _installed:
        for target_id in book.draining_ids(target_group_arn):
            target = group.deregistered_targets.get(target_id)
            if target is not None and target_id not in group.targets:
                statuses.append(group.health_for(target, self.ec2_backend))
    return [s for s in statuses if s.status != "unused" or targets]


def _install(book: TargetHealthBook) -> None:
    _installed.append(book)
    FakeTargetGroup.health_for = _health_for  # type: ignore[method-assign]
    FakeTargetGroup.deregister = _deregister  # type: ignore[method-assign]
    ELBv2Backend.describe_target_health = _describe_target_health  # type: ignore[method-assign]


def _uninstall(book: TargetHealthBook) -> None:
    if book in _installed:
        _installed.remove(book)
    if not _installed:
        FakeTargetGroup.health_for = _ORIGINAL_HEALTH_FOR  # type: ignore[method-assign]
        FakeTargetGroup.deregister = _ORIGINAL_DEREGISTER  # type: ignore[method-assign]
        ELBv2Backend.describe_target_health = _ORIGINAL_DESCRIBE_HEALTH  # type: ignore[method-assign]
