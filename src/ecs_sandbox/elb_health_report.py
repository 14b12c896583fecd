"""How moto's ELBv2 answers through the sandbox's target health book: states, reasons, draining.

``install`` patches moto so ``DescribeTargetHealth`` reports the book's state of each target it
knows (with ELB's reason codes from "Target health status",
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html),
``DeregisterTargets`` starts the book's deregistration delay, and draining targets are listed with
the registered ones as AWS lists them (moto forgets a target on deregistration).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

from .target_group_settings import is_in_use

if TYPE_CHECKING:
    from .target_health import TargetHealthBook

_REASONS: dict[str, tuple[str | None, str | None]] = {
    "initial": ("Elb.RegistrationInProgress", "Target registration is in progress"),
    "healthy": (None, None),
    "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
    "unused": ("Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"),
}


def report_health(
    book: TargetHealthBook, group: FakeTargetGroup, target: dict[str, Any], status: FakeHealthStatus
) -> None:
    """Overwrite moto's answer for a target the book knows (ELB's state, reason and description)."""
    known = book.get(group.arn, target["Id"])
    if known is None or (target["Id"] not in group.targets and not known.deregistered):
        return
    if known.drain_until is not None and known.drain_until <= time.monotonic():
        return  # drained: moto's own "unused / Target.NotRegistered" is the truth now
    state = known.state
    if book.profile is not None and not known.deregistered and not is_in_use(group.arn):
        state = "unused"  # reported at once, before the checker's next look
    reason: str | None
    description: str | None
    if state == "unhealthy":
        reason, description = "Target.ResponseCodeMismatch", known.last_failure
        if not known.last_failure.startswith("Health checks failed"):
            reason = "Target.Timeout" if "timed out" in known.last_failure else "Target.FailedHealthChecks"
    else:
        reason, description = _REASONS[state]
    status.status, status.reason, status.description = state, reason, description


_ORIGINAL_HEALTH_FOR = FakeTargetGroup.health_for
_ORIGINAL_DEREGISTER = FakeTargetGroup.deregister
_ORIGINAL_DESCRIBE_HEALTH = ELBv2Backend.describe_target_health
_installed: list[TargetHealthBook] = []


def _health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
    status: FakeHealthStatus = _ORIGINAL_HEALTH_FOR(self, target, ec2_backend)
    for book in _installed:
        report_health(book, self, target, status)
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
    # A target drained and forgotten is not listed (moto's "unused / Target.NotRegistered").
    return [s for s in statuses if s.reason != "Target.NotRegistered"]


def install(book: TargetHealthBook) -> None:
    """Make moto report, and deregister, through the book (as well as through any other installed)."""
    _installed.append(book)
    FakeTargetGroup.health_for = _health_for  # type: ignore[method-assign]
    FakeTargetGroup.deregister = _deregister  # type: ignore[method-assign]
    ELBv2Backend.describe_target_health = _describe_target_health  # type: ignore[method-assign]


def uninstall(book: TargetHealthBook) -> None:
    """Stop reporting through the book; moto's own answers return once no book is installed."""
    if book in _installed:
        _installed.remove(book)
    if not _installed:
        FakeTargetGroup.health_for = _ORIGINAL_HEALTH_FOR  # type: ignore[method-assign]
        FakeTargetGroup.deregister = _ORIGINAL_DEREGISTER  # type: ignore[method-assign]
        ELBv2Backend.describe_target_health = _ORIGINAL_DESCRIBE_HEALTH  # type: ignore[method-assign]
