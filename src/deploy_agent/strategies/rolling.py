"""Rolling: UpdateService with min/max percent and the circuit breaker, follow our deployment.

Recipe (each step returns early while it is not finished):

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
from deploy_agent.core.rollout import RolloutState, assess_rollout, find_deployment, is_settled_on
from deploy_agent.strategies.base import Progress, Run, register_strategy

STAGES = ["build", "push", "register", "deploy", "healthcheck", "rollback", "finalize"]


@register_strategy
class RollingStrategy:
    name: ClassVar[str] = "rolling"

    def stages(self) -> list[str]:
        return list(STAGES)

    def deploy(self, run: Run) -> Progress:
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
    if state.ecs_deployment_id is None and service.get("taskDefinition") != state.task_definition_arn:
        # A redelivered stage after a crash between saving the phase and UpdateService.
        return _start_update(run)
    verdict = assess_rollout(
        service, state.ecs_deployment_id, state.task_definition_arn, state.previous_task_definition_arn
    )
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
    if not state.rollback_requested:
        state.rollback_requested = True
        state.phase = Phase.ROLLING_BACK
        state.rollback_started_at = run.now()
        run.save()
        if not state.ecs_rolled_back:
            run.emit("rollback_started", to_task_definition_arn=previous)
            _update_service(run, previous)
        else:
            run.emit("rollback_started", to_task_definition_arn=previous, by="ecs")
        return Progress.wait(run.poll_seconds)
    service = run.ecs.describe_service(state.cluster, state.service)
    if is_settled_on(service, previous):
        state.rollback_done = True
        run.emit("rollback_finished", task_definition_arn=previous)
        return Progress.finished()
    if service.get("taskDefinition") != previous and not state.ecs_rolled_back:
        # Our UpdateService was lost (crash between save and call): send it again.
        _update_service(run, previous)
    started = state.rollback_started_at or run.now()
    if (run.now() - started).total_seconds() > float(run.extras.get("rollback_timeout", 600)):
        state.rollback_failed = True
        run.emit("rollback_failed", reason="the service did not settle on the previous revision in time")
        return Progress.finished()
    return Progress.wait(run.poll_seconds)


def _start_update(run: Run) -> Progress:
    state = run.state
    assert state.task_definition_arn is not None
    state.phase = Phase.UPDATING
    state.update_requested_at = state.update_requested_at or run.now()
    run.save()  # the phase is durable before the call that needs undoing
    _update_service(run, state.task_definition_arn)
    run.emit("service_updated", task_definition_arn=state.task_definition_arn)
    return Progress.wait(run.next_poll(True))


def _update_service(run: Run, task_definition_arn: str) -> dict[str, Any]:
    strategy = run.request.get("strategy") or {}
    return run.ecs.update_service(
        run.state.cluster,
        run.state.service,
        task_definition_arn,
        run.request.get("desired_count"),
        int(strategy.get("maximum_percent", 200)),
        int(strategy.get("minimum_healthy_percent", 100)),
        bool(strategy.get("circuit_breaker", True)),
        bool(strategy.get("circuit_breaker_rollback", True)),
    )


def deadline_message(run: Run) -> str:
    seconds = (run.state.deadline - run.state.started_at).total_seconds()
    return f"the deployment did not finish within its deadline of {seconds:.0f} s"
