"""A task's place in its service's target groups: registered when RUNNING, deregistered to stop.

Registration goes through moto's ELBv2 backend (so DescribeTargetHealth lists the target) and the
target health book (which checks it); deregistration goes through moto only, whose replaced
``deregister`` (``moto_patches``) starts the target's deregistration delay in the book.
"""

from __future__ import annotations

from typing import Any

from moto.backends import get_backend

from .target_health import TargetHealthBook
from .tasks import TaskRecord


def register_targets(
    book: TargetHealthBook, account: str, record: TaskRecord, service: Any, events: list[str]
) -> None:
    """Register the task in each of the service's target groups that exists, and say so in ``events``."""
    elbv2 = get_backend("elbv2")[account][record.region]
    for lb in service.load_balancers:
        tg_arn = lb.get("targetGroupArn")
        group = elbv2.target_groups.get(tg_arn) if tg_arn else None
        if group is None:
            continue
        port = record.ports.get(str(lb.get("containerName")), record.ports[record.target_container])
        target_id = record.target_id
        elbv2.register_targets(tg_arn, [{"Id": target_id, "Port": lb.get("containerPort", group.port)}])
        matcher = str((getattr(group, "matcher", None) or {}).get("HttpCode", "200"))
        path = group.health_check_path or "/"
        # ECS ignores ELB's unhealthy verdicts for the service's grace period (AWS seconds; unset: 0)
        grace = getattr(service, "health_check_grace_period_seconds", None)
        book.register(
            tg_arn,
            target_id,
            port,
            path,
            matcher,
            probed=not record.virtual,
            grace_seconds=float(grace) if grace is not None else None,
        )
        record.targets.append((tg_arn, target_id))
        events.append(f"(service {record.service_name}) registered 1 targets in (target-group {tg_arn})")


def deregister_targets(book: TargetHealthBook, account: str, record: TaskRecord) -> None:
    """Deregister the task from its target groups (they drain); forget targets of deleted groups."""
    elbv2 = get_backend("elbv2")[account][record.region]
    for tg, tid in record.targets:
        group = elbv2.target_groups.get(tg)
        if group is None:
            book.remove(tg, tid)  # the target group is gone, and its targets with it
        elif tid in group.targets:
            group.deregister([{"Id": tid}])  # the book starts the target's deregistration delay
