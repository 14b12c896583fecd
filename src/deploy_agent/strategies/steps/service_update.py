"""Update the service to a revision and follow our own ECS deployment; put the previous one back.

Rolling is these two steps; blue-green, canary and linear use them to promote and to undo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deploy_agent.core.outcome import Phase, Trigger
from deploy_agent.core.rollout import (
    RolloutState,
    RolloutVerdict,
    assess_rollout,
    ecs_time,
    find_deployment,
    is_ecs_rollback,
    is_settled_on,
    primary_deployment,
)
from deploy_agent.core.state import PipelineState
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.steps.memory import ServiceUpdateMemory


@dataclass(frozen=True)
class RolloutSettings:
    """The rollout settings a message names; each None keeps the service's own (UpdateService
    changes only what it is given: aws/copilot-cli#4565)."""

    maximum_percent: int | None = None
    minimum_healthy_percent: int | None = None
    circuit_breaker: bool | None = None
    circuit_breaker_rollback: bool | None = None


def update_and_follow(run: Run[ServiceUpdateMemory], settings: RolloutSettings) -> Progress:
    """Send UpdateService once (phase saved first), then follow our deployment to its end."""
    state, memory = run.state, run.memory
    if state.past_deadline(run.now()):
        return run.fail("deadline_exceeded", deadline_message(state), Trigger.DEADLINE)
    if state.phase is Phase.REGISTERED:
        return _start_update(run, settings)
    service = run.ports.ecs.describe_service(state.cluster, state.service)
    assert state.task_definition_arn is not None
    verdict = assess_rollout(
        service,
        state.ecs_deployment_id,
        state.task_definition_arn,
        state.previous_task_definition_arn,
        hint=memory.ecs_deployment_hint,
        earlier_ids=memory.ecs_earlier_deployments,
    )
    if _update_was_lost(state, memory, service, verdict):
        # A redelivered stage after a crash between saving the phase and UpdateService.
        return _start_update(run, settings)
    if verdict.deployment_id and state.ecs_deployment_id is None:
        state.ecs_deployment_id = verdict.deployment_id
        run.emit("ecs_deployment_started", ecs_deployment_id=verdict.deployment_id)
    progress = f"{verdict.state}: {verdict.running}/{verdict.desired} running, {verdict.failed_tasks} failed"
    changed = progress != state.last_progress
    if changed:
        state.last_progress = progress
        run.emit(
            "rollout_progress",
            state=str(verdict.state),
            running=verdict.running,
            desired=verdict.desired,
            failed_tasks=verdict.failed_tasks,
        )
    if verdict.state is RolloutState.COMPLETED:
        state.phase = Phase.VERIFYING
        state.rollout_completed_at = run.now()
        state.ecs_rollout_seconds = ecs_rollout_seconds(find_deployment(service, verdict.deployment_id, ""))
        return Progress.finished()
    if verdict.state is RolloutState.FAILED:
        state.ecs_rolled_back = verdict.ecs_rolled_back
        reason = verdict.reason or "ECS failed the deployment"
        if verdict.ecs_rolled_back:
            reason += " (ECS rolled the service back by itself)"
        return run.fail("rollout_failed", reason, Trigger.CIRCUIT_BREAKER)
    if verdict.state is RolloutState.REPLACED:
        return run.fail("rollout_failed", verdict.reason, Trigger.ERROR)
    # The verdict turns on the deployments' rolloutState and status, which ECS announces with a
    # deployment state change of its own; a task starting or stopping moves only the counts (shown
    # at the next look). In a crash loop each task's news cost a DescribeServices.
    return Progress.wait(run.next_poll(changed, verdict_only=True), quiet_tasks=True)


def ecs_rollout_seconds(deployment: Mapping[str, Any] | None) -> float | None:
    """How long ECS itself took (createdAt to its last update, COMPLETED), from its own timestamps."""
    if not deployment:
        return None
    created, updated = ecs_time(deployment.get("createdAt")), ecs_time(deployment.get("updatedAt"))
    if created is None or updated is None or updated <= created:
        return None
    return (updated - created).total_seconds()


def revert_service(run: Run[ServiceUpdateMemory]) -> Progress:
    """Put the previous task definition back on the service and wait until it is settled there."""
    state, memory = run.state, run.memory
    previous = state.previous_task_definition_arn
    assert previous is not None
    if not state.rollback_requested:
        state.rollback_requested = True
        state.phase = Phase.ROLLING_BACK
        state.rollback_started_at = run.now()
        run.save()
        if not state.ecs_rolled_back:
            target = run.ports.revisions.usable_revision(previous)
            if target != previous:
                run.emit("task_definition_reregistered", from_task_definition_arn=previous, to=target)
                state.previous_task_definition_arn = previous = target
            memory.rollback_target = previous
            run.emit("rollback_started", to_task_definition_arn=previous)
            _update_service(run, previous, RolloutSettings())
            memory.rollback_update_sent = True
        else:
            run.emit("rollback_started", to_task_definition_arn=previous, by="ecs")
        if run.tunables.poll.safety is None:
            return Progress.wait(run.poll_seconds, known=state.ecs_deployment_id)
        # With events or the watcher, nothing to look at until ECS announces the settling: news that
        # came since the verdict's look (while the deploy stage ran or handed over) is this stage's
        # too and cuts the wait to nothing (``adapters.agenda``), so no look "once soon" in case.
        return Progress.wait(
            run.tunables.settle_poll_seconds, quiet_tasks=True, known=state.ecs_deployment_id
        )
    service = run.ports.ecs.describe_service(state.cluster, state.service)
    if is_settled_on(service, previous):
        state.rollback_done = True
        run.emit("rollback_finished", task_definition_arn=previous)
        return Progress.finished()
    if not state.ecs_rolled_back and not memory.rollback_update_sent:
        # Our UpdateService was lost (crash between save and call): send it again, once.
        _update_service(run, memory.rollback_target or previous, RolloutSettings())
        memory.rollback_update_sent = True
    started = state.rollback_started_at or run.now()
    if (run.now() - started).total_seconds() > run.tunables.rollback_timeout_seconds:
        state.rollback_failed = True
        why = f"the service did not settle on the previous revision {previous} in time"
        state.rollback_failure = why
        run.emit("rollback_failed", reason=why)
        return Progress.finished()
    # Settled is the revision's deployment COMPLETED and alone: ECS announces it (a deployment state
    # change, the service's steady state; the watcher sees the deployments change), so the
    # rollback's tasks need not wake it, nor the end of ours, which failed (ECS marks it FAILED a
    # moment before its rollback completes: a look for nothing).
    return Progress.wait(run.tunables.settle_poll_seconds, quiet_tasks=True, known=state.ecs_deployment_id)


def _start_update(run: Run[ServiceUpdateMemory], settings: RolloutSettings) -> Progress:
    state, memory = run.state, run.memory
    assert state.task_definition_arn is not None
    if state.manual_rollback and state.phase is Phase.REGISTERED:
        # An operator's rollback names an older revision, which ECS may have deregistered since.
        target = run.ports.revisions.usable_revision(state.task_definition_arn)
        if target != state.task_definition_arn:
            run.emit(
                "task_definition_reregistered", from_task_definition_arn=state.task_definition_arn, to=target
            )
            state.task_definition_arn = target
    state.phase = Phase.UPDATING
    state.update_requested_at = state.update_requested_at or run.now()
    run.save()  # the phase is durable before the call that needs undoing
    reply = _update_service(run, state.task_definition_arn, settings)
    memory.ecs_deployment_hint, memory.ecs_earlier_deployments = plan_hint(reply, state.task_definition_arn)
    memory.update_replied = True
    run.emit(
        "service_updated",
        task_definition_arn=state.task_definition_arn,
        ecs_deployment_hint=memory.ecs_deployment_hint,
    )
    # Like the follow-up's: the rollout this update began is no news (``core.watch.is_verdict_news``).
    return Progress.wait(run.next_poll(True), quiet_tasks=True)


def plan_hint(reply: Mapping[str, Any], task_definition_arn: str) -> tuple[str | None, list[str]]:
    """Return our deployment id as UpdateService's reply names it (its new PRIMARY), and the others.

    The reply is a hint, not a look: a DescribeServices soon after may still answer with the state
    before the update (eventual consistency). The other ids tell such a stale read from a rollback.
    """
    deployments = list(reply.get("deployments") or [])
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    hint = None
    if primary is not None and primary.get("taskDefinition") == task_definition_arn:
        hint = str(primary.get("id"))
    return hint, [str(d.get("id")) for d in deployments if d.get("id") and str(d.get("id")) != hint]


def _update_was_lost(
    state: PipelineState, memory: ServiceUpdateMemory, service: Mapping[str, Any], verdict: RolloutVerdict
) -> bool:
    """Did our UpdateService never reach ECS (a crash between saving the phase and sending it)?

    Only when its reply was never recorded, nothing on ECS carries our revision, and ECS shows no
    rollback: re-sending into (or after) ECS's own rollback would redeploy the broken revision.
    """
    if state.ecs_deployment_id is not None or memory.update_replied:
        return False
    if verdict.ecs_rolled_back or state.ecs_rolled_back:
        return False
    if is_ecs_rollback(primary_deployment(service)):
        return False
    on_ours = any(
        d.get("taskDefinition") == state.task_definition_arn for d in service.get("deployments") or []
    )
    return not on_ours and service.get("taskDefinition") != state.task_definition_arn


def _update_service(
    run: Run[ServiceUpdateMemory], task_definition_arn: str, settings: RolloutSettings
) -> dict[str, Any]:
    """Send UpdateService with only the rollout settings the message names (ECS keeps the rest).

    The circuit breaker's two flags go together (the API requires both), so the one the message
    leaves out is taken from the service as it is.
    """
    breaker, rollback = settings.circuit_breaker, settings.circuit_breaker_rollback
    ecs = run.ports.ecs
    if (breaker is None) != (rollback is None):
        current = ecs.describe_service(run.state.cluster, run.state.service)
        config = (current.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker") or {}
        breaker = bool(config.get("enable", False)) if breaker is None else breaker
        rollback = bool(config.get("rollback", False)) if rollback is None else rollback
    return ecs.update_service(
        run.state.cluster,
        run.state.service,
        task_definition_arn,
        run.request.desired_count,
        settings.maximum_percent,
        settings.minimum_healthy_percent,
        breaker,
        rollback,
    )


def deadline_message(state: PipelineState) -> str:
    seconds = (state.deadline - state.started_at).total_seconds()
    return f"the deployment did not finish within its deadline of {seconds:.0f} s"
