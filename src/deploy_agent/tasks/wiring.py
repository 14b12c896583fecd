"""A strategy's ``Run`` for one task run: the validated message, the strategy's typed memory, and the
ports wired to this process's adapters (fenced by the service's lock).

The message is parsed once per task run, here; stages and strategies read the model, never the
stored dict.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deploy_agent.adapters.redis_store import ReleaseLedger
from deploy_agent.core.ecs_events import queue_region
from deploy_agent.core.orchestration import plan_chain
from deploy_agent.core.polling import PollPolicy
from deploy_agent.core.ports import EcsPort
from deploy_agent.core.state import PipelineState
from deploy_agent.strategies import Ports, Run, Tunables, strategy_for
from deploy_agent.tasks import revisions
from deploy_agent.tasks.approval import book_for
from deploy_agent.tasks.events import record_event
from deploy_agent.tasks.fence import fence_for, fenced
from deploy_agent.tasks.messages import request_of
from deploy_agent.tasks.runtime import Runtime

log = logging.getLogger("deploy_agent.pipeline")


@dataclass(frozen=True)
class _Revisions:
    """``RevisionsPort`` on ECS and the release ledger (``tasks.revisions``)."""

    ecs: Any
    ledger: ReleaseLedger
    cluster: str
    service: str

    def usable_revision(self, task_definition_arn: str) -> str:
        return revisions.usable_revision(
            self.ecs, self.ledger, self.cluster, self.service, task_definition_arn
        )


def tunables_of(rt: Runtime, region: str | None = None) -> Tunables:
    """Return the waits of a deployment in ``region`` (events wake only those in the queue's Region;
    without events, the cluster watcher wakes every Region's)."""
    settings = rt.settings
    queue = settings.events_queue_url
    evented = bool(queue) and (region is None or queue_region(queue or "", settings.aws_region) == region)
    # without events, the cluster watcher's batched looks wake a deployment whose service moved
    watched = not queue and settings.watch_interval_seconds > 0
    return Tunables(
        poll=PollPolicy(
            fast=settings.poll_fast_seconds,
            slow=settings.poll_interval_seconds,
            budget=settings.poll_budget,
            # ECS's events or the watcher wake the stage: polling is only the safety net for a wake
            # lost or late
            safety=settings.event_safety_poll_seconds if evented or watched else None,
        ),
        rollback_timeout_seconds=float(settings.rollback_timeout_seconds),
        approval_poll_seconds=settings.approval_poll_seconds,
        settle_seconds=settings.zero_downtime_settle_seconds,
    )


def make_run(rt: Runtime, state: PipelineState, stage: str) -> Run[Any]:
    """Return the strategy's view of this deployment, wired to this process's adapters."""
    store = rt.store
    strategy = strategy_for(state.strategy)
    memory = strategy.memory.model_validate(state.strategy_state)

    def persist() -> None:
        store.save(state.deployment_id, state.model_dump(mode="json"))

    def emit(kind: str, **fields: Any) -> None:
        record_event(rt, state, kind, stage=stage, **fields)
        shown = {k: v for k, v in fields.items() if v is not None}
        log.info("%s %s", kind, shown, extra={"deployment_id": state.deployment_id, "stage": stage})

    lock = rt.lock(state.cluster, state.service, state.region)
    fence = fence_for(lock, state.cluster, state.service, state.deployment_id)
    ecs: EcsPort = fenced(rt.services(state.region), fence)
    ledger = ReleaseLedger(rt.redis, rt.settings.keep_releases, state.region)
    ports = Ports(
        ecs=ecs,
        elb=fenced(rt.elb(state.region), fence),
        alarms=rt.alarms(state.region),
        prober=rt.prober,
        traffic=rt.traffic_watch,
        revisions=_Revisions(fenced(rt.ecs(state.region), fence), ledger, state.cluster, state.service),
        clock=rt.now,
        approvals=book_for(rt) if rt.policy is not None else None,  # no policy, no approvals ever
        prometheus=rt.prometheus,
        count_verdict=rt.count_verdict,
    )
    return Run(
        state=state,
        request=request_of(state),
        memory=memory,
        ports=ports,
        emit=emit,
        tunables=tunables_of(rt, state.region),
        persist=persist,
        fence=fence,
    )


def chain_for(state: PipelineState, now: datetime, stages: Sequence[str] | None = None) -> list[str]:
    """Plan the deployment's chain once (``core.orchestration.plan_chain``), record the stages it
    skips as skipped on the state, and return the stages to run. The entry task and the in-process
    runner both start a deployment through this."""
    request = None if state.manual_rollback else request_of(state)
    plan = plan_chain(stages or strategy_for(state.strategy).stages, request)
    for name in plan.idle:  # shown in the result as skipped, without a task run each
        record, _ = state.begin_stage(name, now)
        record.outcome, record.finished_at = "skipped", now
    return plan.run
