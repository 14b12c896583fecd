"""How moto's ELBv2 answers through the sandbox's target health book: states, reasons, draining.

``install`` registers the book with the methods ``moto_patches`` replaces (its patches 9 to 11),
so ``DescribeTargetHealth`` reports the book's state of each target it knows (with ELB's reason
codes from "Target health status",
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html),
``DeregisterTargets`` starts the book's deregistration delay, and draining targets are listed with
the registered ones as AWS lists them (moto forgets a target on deregistration).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

from . import moto_patches
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


@dataclass(frozen=True, eq=False)
class BookReport:
    """A target health book as moto's ELBv2 asks about it (a ``moto_patches.HealthSource``)."""

    book: TargetHealthBook

    def report(self, group: FakeTargetGroup, target: dict[str, Any], status: FakeHealthStatus) -> None:
        """Overwrite moto's answer with the book's."""
        report_health(self.book, group, target, status)

    def deregistered(self, group: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
        """Start the group's deregistration delay for each target."""
        seconds = self.book.drain_seconds_for(group)
        for target in targets:
            self.book.drain(group.arn, str(target["Id"]), seconds)

    def draining_ids(self, group_arn: str) -> Iterable[str]:
        """Return the group's draining targets."""
        return self.book.draining_ids(group_arn)


_reports: dict[int, BookReport] = {}


def install(book: TargetHealthBook) -> None:
    """Make moto report, and deregister, through the book (as well as through any other installed)."""
    report = _reports.setdefault(id(book), BookReport(book))
    moto_patches.register(moto_patches.hooks.health_sources, report)


def uninstall(book: TargetHealthBook) -> None:
    """Stop reporting through the book; moto's own answers return once no book is installed."""
    report = _reports.pop(id(book), None)
    if report is not None:
        moto_patches.unregister(moto_patches.hooks.health_sources, report)
