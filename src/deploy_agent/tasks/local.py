"""The whole pipeline in this process, without a broker: ``deploy-agent run FILE`` for a one-off.

It takes the same per-service lock and writes the same state, events and result to Redis as a
worker does, so ``deploy-agent status`` and running workers see it; only the waiting is a plain sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from deploy_agent.core.errors import RequestRejected
from deploy_agent.core.outcome import Phase
from deploy_agent.core.state import PipelineState
from deploy_agent.models import DeploymentResult
from deploy_agent.settings import Settings
from deploy_agent.tasks import finish
from deploy_agent.tasks.entry import plan_deployment
from deploy_agent.tasks.events import deliver_now, record_event
from deploy_agent.tasks.runtime import Runtime, get_runtime
from deploy_agent.tasks.stages import STEPS, advance_stage
from deploy_agent.tasks.wiring import chain_for

EventSink = Callable[[dict[str, Any]], None]


def without_wakes(settings: Settings) -> Settings:
    """Return the settings of a process where nothing wakes a wait: no dispatcher, cluster watcher or
    event consumer runs in ``deploy-agent run``, so each wait polls on its own schedule, not on the
    safety net of a worker that news wakes (a 15-s safety poll made its verdicts 15 s late)."""
    return settings.model_copy(update={"watch_interval_seconds": 0.0, "events_queue_url": None})


def run_locally(
    request: Any,
    rt: Runtime | None = None,
    on_event: EventSink | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run a deployment to its end in this process and return its ``DeploymentResult`` as JSON."""
    rt = rt or get_runtime()
    rt.settings = without_wakes(rt.settings)
    try:
        state = plan_deployment(rt, request)
    except RequestRejected as exc:
        return DeploymentResult.rejected(request, exc, rt.now()).model_dump(mode="json")
    store = rt.store
    deployment_id = state.deployment_id
    if store.create(deployment_id, state.model_dump(mode="json")) is None:
        known = PipelineState.model_validate(store.load(deployment_id) or {})
        if known.phase is Phase.DONE:
            return store.result(deployment_id) or {}
        raise RuntimeError(f"deployment {deployment_id} is already running elsewhere")
    seen = 0

    def flush() -> None:
        nonlocal seen
        for item in store.events(deployment_id, seen):
            seen += 1
            if on_event is not None:
                on_event(item)

    if rt.notifier is None:
        rt.notifier = deliver_now  # no broker here: tell webhooks directly
    record_event(rt, state, "accepted", strategy=state.strategy)
    lock = rt.lock(state.cluster, state.service, state.region)
    while not lock.acquire(deployment_id):
        record_event(rt, state, "waiting_for_lock", holder=lock.holder())
        flush()
        sleep(rt.settings.lock_wait_seconds)
    stages = chain_for(state, rt.now())
    store.save(deployment_id, state.model_dump(mode="json"))
    rt.services(state.region).track(state.cluster, state.service)
    record_event(rt, state, "started", strategy=state.strategy, stages=stages)
    for stage in stages:
        while True:
            progress = advance_stage(rt, deployment_id, stage, STEPS[stage])
            flush()
            if progress.done:
                break
            sleep(progress.wait_seconds)
    result = finish.finish(rt, deployment_id) or {}
    flush()
    return result
