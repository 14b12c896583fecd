"""Rolling: UpdateService with min/max percent and the circuit breaker, follow our deployment.

Recipe (each step returns early while it is not finished):

0. when the operator's policy asks for it, wait for a human's approval (``strategies.approval``);
1. send UpdateService with the new task definition (phase ``updating`` is saved first);
2. find our deployment and follow it to COMPLETED or FAILED, or the deadline;
3. (healthcheck stage, shared) verify the release over HTTP;
4. on any failure put the previous task definition back and wait until the service is settled on it,
   unless ECS's circuit breaker already rolled back, in which case only wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from deploy_agent.core.outcome import Phase, Trigger, needs_rollback
from deploy_agent.core.rollout import (
    RolloutState,
    RolloutVerdict,
    assess_rollout,
    find_deployment,
    is_ecs_rollback,
    is_settled_on,
    primary_deployment,
)
from deploy_agent.core.state import PipelineState
from deploy_agent.strategies.approval import await_approval
from deploy_agent.strategies.base import Progress, Run, register_strategy

#: ``strategy_state`` keys: our ECS deployment id as UpdateService's reply named it, and the ids of
#: the deployments listed before it
HINT = "ecs_deployment_hint"
ROLLBACK_TARGET = "rollback_target"
ROLLBACK_SENT = "rollback_update_sent"
ROLLBACK_FAILURE = "rollback_failure"
EARLIER = "ecs_earlier_deployments"

STAGES = ["preflight", "build", "push", "register", "deploy", "healthcheck", "rollback", "finalize"]


@register_strategy
class RollingStrategy:
    name: ClassVar[str] = "rolling"

    def stages(self) -> list[str]:
        return list(STAGES)

    def deploy(self, run: Run) -> Progress:
        if run.state.phase is Phase.REGISTERED:  # nothing sent to the service yet
            gate = await_approval(run)
            if not gate.done or run.state.failure is not None:
                return gate
        return update_and_follow(run)

    def rollback(self, run: Run) -> Progress:
        state = run.state
        enabled = bool((state.request.get("rollback") or {}).get("enabled", True))
        if not (
            state.rollback_requested or state.ecs_rolled_back or needs_rollback(state.phase, enabled, False)
        ):
            return Progress.skip()
        return revert_service(run)


def update_and_follow(run: Run) -> Progress:
    """Send UpdateService once (phase saved first), then follow our deployment to its end."""
    state = run.state
    if state.past_deadline(run.now()):
        state.fail("deadline_exceeded", deadline_message(run), Trigger.DEADLINE)
        return Progress.finished()
    if state.phase is Phase.REGISTERED:
        return _start_update(run)
    service = run.ecs.describe_service(state.cluster, state.service)
    assert state.task_definition_arn is not None
    ss = state.strategy_state
    verdict = assess_rollout(
        service,
        state.ecs_deployment_id,
        state.task_definition_arn,
        state.previous_task_definition_arn,
        hint=ss.get(HINT),
        earlier_ids=ss.get(EARLIER) or (),
    )
    if _update_was_lost(state, service, verdict):
        # A redelivered stage after a crash between saving the phase and UpdateService.
        return _start_update(run)
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
        state.fail("rollout_failed", reason, Trigger.CIRCUIT_BREAKER)
        return Progress.finished()
    if verdict.state is RolloutState.REPLACED:
        state.fail("rollout_failed", verdict.reason, Trigger.ERROR)
        return Progress.finished()
    return Progress.wait(run.next_poll(changed))


def ecs_rollout_seconds(deployment: Mapping[str, Any] | None) -> float | None:
    """How long ECS itself took (createdAt to its last update, COMPLETED), from its own timestamps."""
    if not deployment:
        return None
    created, updated = _moment(deployment.get("createdAt")), _moment(deployment.get("updatedAt"))
    if created is None or updated is None or updated <= created:
        return None
    return (updated - created).total_seconds()


def _moment(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def revert_service(run: Run) -> Progress:
    """Put the previous task definition back on the service and wait until it is settled there."""
    state = run.state
    previous = state.previous_task_definition_arn
    assert previous is not None
    ss = state.strategy_state
    if not state.rollback_requested:
        state.rollback_requested = True
        state.phase = Phase.ROLLING_BACK
        state.rollback_started_at = run.now()
        run.save()
        if not state.ecs_rolled_back:
            target = usable_revision(run, previous)
            if target != previous:
                run.emit("task_definition_reregistered", from_task_definition_arn=previous, to=target)
                state.previous_task_definition_arn = previous = target
            ss[ROLLBACK_TARGET] = previous
            run.emit("rollback_started", to_task_definition_arn=previous)
            _update_service(run, previous)
            ss[ROLLBACK_SENT] = True
        else:
            run.emit("rollback_started", to_task_definition_arn=previous, by="ecs")
        return Progress.wait(run.poll_seconds)
    service = run.ecs.describe_service(state.cluster, state.service)
    if is_settled_on(service, previous):
        state.rollback_done = True
        run.emit("rollback_finished", task_definition_arn=previous)
        return Progress.finished()
    if not state.ecs_rolled_back and not ss.get(ROLLBACK_SENT):
        # Our UpdateService was lost (crash between save and call): send it again, once.
        _update_service(run, str(ss.get(ROLLBACK_TARGET) or previous))
        ss[ROLLBACK_SENT] = True
    started = state.rollback_started_at or run.now()
    if (run.now() - started).total_seconds() > float(run.extras.get("rollback_timeout", 600)):
        state.rollback_failed = True
        why = f"the service did not settle on the previous revision {previous} in time"
        ss[ROLLBACK_FAILURE] = why
        run.emit("rollback_failed", reason=why)
        return Progress.finished()
    return Progress.wait(run.poll_seconds)


def usable_revision(run: Run, task_definition_arn: str) -> str:
    """Return a revision UpdateService can use: ``task_definition_arn``, or a re-registered copy.

    The check lives in the runtime (``extras["usable_revision"]``, see ``tasks.revisions``): it
    raises ``RolloutFailed`` before any UpdateService when the revision cannot be used or restored.
    """
    check = run.extras.get("usable_revision")
    return task_definition_arn if check is None else str(check(task_definition_arn))


def _start_update(run: Run) -> Progress:
    state = run.state
    assert state.task_definition_arn is not None
    if state.manual_rollback and state.phase is Phase.REGISTERED:
        # An operator's rollback names an older revision, which ECS may have deregistered since.
        target = usable_revision(run, state.task_definition_arn)
        if target != state.task_definition_arn:
            run.emit(
                "task_definition_reregistered", from_task_definition_arn=state.task_definition_arn, to=target
            )
            state.task_definition_arn = target
    state.phase = Phase.UPDATING
    state.update_requested_at = state.update_requested_at or run.now()
    run.save()  # the phase is durable before the call that needs undoing
    reply = _update_service(run, state.task_definition_arn)
    hint, earlier = plan_hint(reply, state.task_definition_arn)
    state.strategy_state[HINT], state.strategy_state[EARLIER] = hint, earlier
    run.emit("service_updated", task_definition_arn=state.task_definition_arn, ecs_deployment_hint=hint)
    return Progress.wait(run.next_poll(True))


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


def _update_was_lost(state: PipelineState, service: Mapping[str, Any], verdict: RolloutVerdict) -> bool:
    """Did our UpdateService never reach ECS (a crash between saving the phase and sending it)?

    Only when its reply was never recorded, nothing on ECS carries our revision, and ECS shows no
    rollback: re-sending into (or after) ECS's own rollback would redeploy the broken revision.
    """
    if state.ecs_deployment_id is not None or HINT in state.strategy_state:
        return False
    if verdict.ecs_rolled_back or state.ecs_rolled_back:
        return False
    primary = primary_deployment(service)
    if is_ecs_rollback(primary):
        return False
    on_ours = any(
        d.get("taskDefinition") == state.task_definition_arn for d in service.get("deployments") or []
    )
    return not on_ours and service.get("taskDefinition") != state.task_definition_arn


def _update_service(run: Run, task_definition_arn: str) -> dict[str, Any]:
    """Send UpdateService with only the rollout settings the message names (ECS keeps the rest).

    Sending defaults would overwrite a service tuned to, say, 150/50 with rollback off: UpdateService
    keeps what is left out (aws/copilot-cli#4565). The circuit breaker's two flags go together (the
    API requires both), so the one the message leaves out is taken from the service as it is.
    """
    strategy = run.request.get("strategy") or {}
    breaker, rollback = strategy.get("circuit_breaker"), strategy.get("circuit_breaker_rollback")
    if (breaker is None) != (rollback is None):
        current = run.ecs.describe_service(run.state.cluster, run.state.service)
        config = (current.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker") or {}
        breaker = bool(config.get("enable", False)) if breaker is None else breaker
        rollback = bool(config.get("rollback", False)) if rollback is None else rollback
    reply: dict[str, Any] = run.ecs.update_service(
        run.state.cluster,
        run.state.service,
        task_definition_arn,
        run.request.get("desired_count"),
        _optional_int(strategy.get("maximum_percent")),
        _optional_int(strategy.get("minimum_healthy_percent")),
        None if breaker is None else bool(breaker),
        None if rollback is None else bool(rollback),
    )
    return reply


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def deadline_message(run: Run) -> str:
    seconds = (run.state.deadline - run.state.started_at).total_seconds()
    return f"the deployment did not finish within its deadline of {seconds:.0f} s"
