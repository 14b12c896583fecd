"""The end of every deployment: the result decided and stored, the lock released, the release noted."""

from __future__ import annotations

import logging
from typing import Any

from deploy_agent.adapters.redis_store import ReleaseLedger, WaitingLine
from deploy_agent.core.errors import DeployError
from deploy_agent.core.outcome import Phase
from deploy_agent.core.releases import family_of, plan_revision_cleanup
from deploy_agent.core.state import PipelineState
from deploy_agent.tasks import metrics, steps
from deploy_agent.tasks.approval import book_for
from deploy_agent.tasks.events import event_of, notify_event
from deploy_agent.tasks.revisions import register_kwargs_of
from deploy_agent.tasks.runtime import Runtime

log = logging.getLogger("deploy_agent.pipeline")


def finish(rt: Runtime, deployment_id: str, known: PipelineState | None = None) -> dict[str, Any] | None:
    """Return the final result, deciding and storing it the first time (idempotent).

    ``known``: the state as this process saved it last, holding the step mutex (no read needed).
    """
    store = rt.store
    if known is None:
        raw = store.load(deployment_id)
        if raw is None:
            return None
        state = PipelineState.model_validate(raw)
    else:
        state = known
    if state.phase is Phase.DONE:
        # Redelivered after a kill between saving the result and releasing the lock: release it
        # now, or the service stays locked until the TTL. Compare-and-delete: never someone else's.
        _let_go(rt, state)
        return store.result(deployment_id)
    if state.awaiting_approval:
        # Ended while it waited (its deadline, a lost lock): nobody may decide on it any more.
        state.approval = book_for(rt).expire(deployment_id, rt.now()) or state.approval
    state.finished_at = rt.now()
    result = steps.build_result(state)
    payload = result.model_dump(mode="json")
    state.outcome = payload["outcome"]
    state.phase = Phase.DONE
    # The result, the state that says so and the "finished" event: one step, so nobody sees one
    # without the others; webhooks hear of it once the lock is let go.
    finished = event_of(rt, state, "finished", outcome=payload["outcome"], error=payload["error"])
    store.save_final(deployment_id, payload, state.model_dump(mode="json"), [finished])
    _let_go(rt, state)
    notify_event(rt, state, finished, {"result": payload})
    metrics.DEPLOYMENTS.labels(state.strategy, payload["outcome"]).inc()
    metrics.DEPLOYMENT_SECONDS.labels(state.strategy, payload["outcome"]).observe(result.duration_seconds)
    if result.rollback is not None:
        metrics.ROLLBACKS.labels(state.strategy, result.rollback.trigger).inc()
    metrics.IN_PROGRESS.dec()
    if payload["outcome"] == "succeeded" and state.task_definition_arn:
        _note_release(rt, state)
    log.info("finished: %s", payload["outcome"], extra={"deployment_id": deployment_id, "stage": "finalize"})
    return payload


def _let_go(rt: Runtime, state: PipelineState) -> None:
    """Release the service's lock if this deployment still holds it, and leave its waiting line."""
    held = rt.lock(state.cluster, state.service, state.region).release(state.deployment_id)
    WaitingLine(rt.redis, state.cluster, state.service, state.region).leave(state.deployment_id)
    if held:  # the service is in flight for whoever holds it: only its holder stops tracking it
        rt.services(state.region).untrack(state.cluster, state.service)


def _rollout_seconds(state: PipelineState) -> float | None:
    """ECS's own rollout time when it told us (our detection delay would inflate the next aim)."""
    if state.ecs_rollout_seconds is not None:
        return round(state.ecs_rollout_seconds, 3)
    if state.update_requested_at is None or state.rollout_completed_at is None:
        return None
    return round((state.rollout_completed_at - state.update_requested_at).total_seconds(), 3)


def _definition(rt: Runtime, state: PipelineState) -> dict[str, Any] | None:
    """The release's definition as RegisterTaskDefinition kwargs: a rollback to it after ECS
    deregistered and deleted the revision registers it again from here (``tasks.revisions``)."""
    assert state.task_definition_arn is not None
    if state.registered_definition is not None and state.registered_definition.get("family"):
        return state.registered_definition
    try:  # a manual rollback's target, or a state saved before registrations kept their definition
        return register_kwargs_of(rt.ecs(state.region).describe_task_definition(state.task_definition_arn))
    except DeployError:
        log.warning("could not keep the definition of %s", state.task_definition_arn)
        return None


def _note_release(rt: Runtime, state: PipelineState) -> None:
    """Record the good release and deregister our old revisions that nothing needs any more."""
    assert state.task_definition_arn is not None
    ledger = ReleaseLedger(rt.redis, rt.settings.keep_releases, state.region)
    ledger.record(
        state.cluster,
        state.service,
        {
            "deployment_id": state.deployment_id,
            "task_definition_arn": state.task_definition_arn,
            "image_uri": state.image_uri,
            "finished_at": (state.finished_at or rt.now()).isoformat(),
            "rollout_seconds": _rollout_seconds(state),
            "register_kwargs": _definition(rt, state),
        },
    )
    family = family_of(state.task_definition_arn)
    needed = {r["task_definition_arn"] for r in ledger.releases(state.cluster, state.service)}
    needed |= {state.task_definition_arn, state.previous_task_definition_arn or ""}
    ecs = rt.ecs(state.region)
    for arn in plan_revision_cleanup(ledger.registered(family), needed, rt.settings.keep_releases):
        try:
            ecs.deregister_task_definition(arn)
            ledger.forget_registered(family, arn)
        except DeployError:
            log.warning("could not deregister %s", arn, extra={"deployment_id": state.deployment_id})
