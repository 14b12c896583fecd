"""Driving one of ECS's own service deployments: start it, answer its PAUSE hooks, stop it.

Each fact is written before the call it describes, so a redelivered stage never answers a hook or
stops a deployment twice: ``answering`` is saved before ContinueServiceDeployment, and a hook that
is no longer AWAITING_ACTION when we look again was answered (by us, or by its timeout); a
StopServiceDeployment is sent only while ECS still lists the deployment as running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from pydantic import Field

from deploy_agent.core.ecs_native import (
    ROLLING_BACK,
    RUNNING,
    NativeShape,
    assess_rollback_cause,
    awaiting_hook,
    decide_hook_point,
    hook_key,
    plan_deployment_configuration,
    plan_hook_timeout,
    plan_hooks_released,
)
from deploy_agent.core.errors import AwsNotFound
from deploy_agent.core.outcome import Phase, Trigger
from deploy_agent.core.state import FailureState, HookAnswer, LifecycleVisit, ServiceDeploymentState
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.steps.native_gates import NativeGateMemory, begin_watch
from deploy_agent.strategies.steps.service_update import deadline_message

#: how long after UpdateService a deployment ECS does not list yet may take to appear
FIND_GRACE_SECONDS = 30.0

#: the gates of one hook firing: finished = passed; a failure is recorded with ``run.fail``
Judge = Callable[[Run[Any], str], Progress]


class NativeMemory(NativeGateMemory):
    """What the native steps keep: the UpdateService sent, the hooks answered, the stop sent."""

    update_sent: bool = False
    #: our PAUSE hooks were taken off the service after its deployment ended
    hooks_released: bool = False
    #: the keys (``hook_key``) of the hook firings answered
    answered: list[str] = Field(default_factory=list)
    #: the firing being answered now (saved before ContinueServiceDeployment)
    answering: str | None = None
    #: the point being judged now and the firing it belongs to
    judging: str | None = None
    judging_key: str | None = None


def start_deployment(run: Run[NativeMemory], shape: NativeShape) -> Progress:
    """Send UpdateService with ECS's strategy and our PAUSE hooks (phase ``updating`` saved first)."""
    state, memory, ecs = run.state, run.memory, run.ports.ecs
    service = ecs.describe_service(state.cluster, state.service)
    approvals = run.ports.approvals
    rule = approvals.rule_for(state.region, state.cluster, state.service) if approvals else None
    timeout = plan_hook_timeout(shape.hook_timeout_minutes, rule.timeout_seconds if rule else None)
    config = plan_deployment_configuration(
        NativeShape(**{**shape.__dict__, "hook_timeout_minutes": timeout}),
        service.get("deploymentConfiguration") or {},
        list(run.request.rollback.alarm_names),
    )
    assert state.task_definition_arn is not None
    state.phase, state.update_requested_at = Phase.UPDATING, run.now()
    memory.update_sent = True
    run.save()  # a crash from here on may have started ECS's deployment: the rollback stage looks
    reply = ecs.update_service(
        state.cluster,
        state.service,
        state.task_definition_arn,
        desired_count=run.request.desired_count,
        deployment_configuration=config,
    )
    run.emit("native_deployment_requested", strategy=shape.strategy, hook_timeout_minutes=timeout)
    arn = reply.get("currentServiceDeployment")
    if arn and _is_ours(run, str(arn)):  # the reply may still name the previous deployment
        _adopt(run, str(arn))
        return Progress.finished()
    return Progress.wait(run.tunables.poll.fast)


def _is_ours(run: Run[NativeMemory], arn: str) -> bool:
    """Does the service deployment ``arn`` target our task definition?"""
    ecs = run.ports.ecs
    target = (ecs.describe_service_deployment(arn).get("targetServiceRevision") or {}).get("arn")
    return bool(target) and ecs.describe_service_revision(str(target)).get("taskDefinition") == (
        run.state.task_definition_arn
    )


def find_deployment(run: Run[NativeMemory]) -> Progress:
    """Find ECS's service deployment of our revision (UpdateService's reply did not name it)."""
    state, ecs = run.state, run.ports.ecs
    began = state.update_requested_at or state.started_at
    for brief in ecs.list_service_deployments(state.cluster, state.service, began - timedelta(seconds=5)):
        revision_arn = brief.get("targetServiceRevisionArn")
        if not revision_arn:
            continue
        revision = ecs.describe_service_revision(str(revision_arn))
        if revision.get("taskDefinition") == state.task_definition_arn:
            _adopt(run, str(brief["serviceDeploymentArn"]))
            return Progress.finished()
    if (run.now() - began).total_seconds() < FIND_GRACE_SECONDS:
        return Progress.wait(run.poll_seconds)
    service = ecs.describe_service(state.cluster, state.service)
    if service.get("taskDefinition") != state.task_definition_arn:
        run.memory.update_sent = False  # the UpdateService never reached ECS (a crash): send it again
        return Progress.wait(run.tunables.poll.fast)
    return run.fail(
        "service_deployment_not_found",
        "ECS took the new revision but lists no service deployment for it",
        Trigger.ERROR,
    )


def follow_deployment(run: Run[NativeMemory], points: Sequence[str], judge: Judge) -> Progress:
    """Follow ECS's deployment to its end, answering each PAUSE hook once its point's gates decided."""
    state, memory = run.state, run.memory
    native = _native(run)
    found = run.ports.ecs.describe_service_deployment(native.arn)
    _note(run, found)
    status = str(found.get("status") or "")
    if status == "SUCCESSFUL":
        run.emit("native_deployment_succeeded", service_deployment=native.arn)
        return Progress.finished()
    if status in ROLLING_BACK or status.startswith("ROLLBACK") or status == "STOPPED":
        end = assess_rollback_cause(found)
        state.ecs_rolled_back = True
        return run.fail("ecs_rolled_back", end.reason, end.trigger)
    if state.past_deadline(run.now()):
        return run.fail("deadline_exceeded", deadline_message(state), Trigger.DEADLINE)
    hook = awaiting_hook(found)
    if memory.answering is not None and (hook is None or hook_key(hook) != memory.answering):
        # ECS moved past the firing we were answering: our CONTINUE was taken, though the run that
        # sent it died before it could note so. Counted, so the next firing gets the next point.
        memory.answered.append(memory.answering)
        memory.answering = None
    if hook is None:
        # A hook's firing shows in DescribeServiceDeployments only: neither ECS's service events nor
        # the cluster watcher see it, so this look keeps its own schedule.
        return Progress.wait(run.next_poll(changed=False, woken_on_change=False))
    key = hook_key(hook)
    if key in memory.answered:
        return Progress.wait(run.tunables.poll.fast)  # ECS has not moved on yet
    if memory.judging_key != key:
        point = decide_hook_point(found.get("lifecycleStage"), len(memory.answered), points)
        memory.judging, memory.judging_key = point, key
        run.emit("hook_reached", point=point, hook_id=hook.get("hookId"), traffic_percent=_weight(found))
    point = memory.judging or points[-1]
    verdict = judge(run, point)
    if state.failure is not None:
        _record_hook(run, hook, point, "ROLLBACK", _weight(found), state.failure.message)
        return Progress.finished()  # the rollback stage stops ECS's deployment
    if not verdict.done:
        return verdict
    if memory.answering != key:  # (the same key: a retry after a crash before the call)
        memory.answering = key
        _record_hook(run, hook, point, "CONTINUE", _weight(found), None)
        if point != points[-1]:
            begin_watch(run, point)  # the traffic shift this answer lets ECS make is watched
        run.save()  # a redelivered step that finds this firing gone knows it was answered
    run.ports.ecs.continue_service_deployment(native.arn, str(hook.get("hookId")), "CONTINUE")
    memory.answered.append(key)
    memory.answering = memory.judging = memory.judging_key = None
    return Progress.wait(run.tunables.poll.fast)


def stop_deployment(run: Run[NativeMemory]) -> Progress:
    """Roll ECS's deployment back (StopServiceDeployment ROLLBACK, once) and follow it to its end."""
    state, native = run.state, run.state.service_deployment
    if native is None:
        return Progress.skip()  # nothing was started on ECS
    found = run.ports.ecs.describe_service_deployment(native.arn)
    _note(run, found)
    status = str(found.get("status") or "")
    if status.startswith("ROLLBACK") and native.stopped_with is None and not state.ecs_rolled_back:
        _rolled_back_by_ecs(run, found)
    if status in RUNNING:
        if native.stopped_with is None:
            native.stopped_with = "ROLLBACK"
            state.rollback_requested, state.rollback_started_at = True, run.now()
            run.save()
            run.emit("rollback_started", trigger=str(state.failure.trigger) if state.failure else None)
        # sent again only while ECS still runs the deployment: a stop it took is not repeated
        run.ports.ecs.stop_service_deployment(native.arn, "ROLLBACK")
        return Progress.wait(run.tunables.poll.fast)
    if status == "ROLLBACK_SUCCESSFUL":
        state.rollback_done = True
        run.emit("rollback_finished", reverted=True, service_deployment=native.arn)
        return Progress.finished()
    if status in ("ROLLBACK_FAILED", "SUCCESSFUL", "STOPPED"):
        state.rollback_failed = status != "STOPPED" or native.stopped_with == "ROLLBACK"
        state.rollback_failure = f"ECS's service deployment ended {status}: {found.get('statusReason') or ''}"
        run.emit("rollback_finished", reverted=False, status=status)
        return Progress.finished()
    started = state.rollback_started_at or run.now()
    if (run.now() - started).total_seconds() > run.tunables.rollback_timeout_seconds:
        state.rollback_failed = True
        state.rollback_failure = (
            f"ECS's rollback did not finish within {run.tunables.rollback_timeout_seconds:.0f} s"
        )
        return Progress.finished()
    return Progress.wait(run.poll_seconds)


def _rolled_back_by_ecs(run: Run[NativeMemory], found: dict[str, Any]) -> None:
    """Record that ECS rolled back by itself after a look failed the deployment, before our stop.

    ECS's rollback (a hook's timeout, its breaker, an alarm) is what undid the release, so its cause
    is the one the result gives; ours stays in the message. Typically one look saw the hook still
    awaiting, and our gate failed because ECS's timeout had meanwhile stopped the new tasks.
    """
    state, end = run.state, assess_rollback_cause(found)
    ours = state.failure
    message = end.reason if ours is None else f"{end.reason} (our own check had failed too: {ours.message})"
    state.failure = FailureState(type="ecs_rolled_back", message=message, trigger=end.trigger)
    state.ecs_rolled_back = True
    run.emit("ecs_rolled_back", reason=end.reason)


def release_hooks(run: Run[NativeMemory]) -> None:
    """Take our PAUSE hooks off the service once ECS's deployment has ended (once, idempotent)."""
    memory, state = run.memory, run.state
    if memory.hooks_released or not memory.update_sent:
        return
    service = run.ports.ecs.describe_service(state.cluster, state.service)
    released = plan_hooks_released(service.get("deploymentConfiguration") or {})
    if released is not None:
        run.ports.ecs.update_deployment_configuration(state.cluster, state.service, released)
        run.emit("pause_hooks_removed")
    memory.hooks_released = True


def _adopt(run: Run[NativeMemory], arn: str) -> None:
    run.state.service_deployment = ServiceDeploymentState(arn=arn)
    run.emit("native_deployment_started", service_deployment=arn)
    run.save()


def _native(run: Run[NativeMemory]) -> ServiceDeploymentState:
    native = run.state.service_deployment
    if native is None:
        raise AwsNotFound("no ECS service deployment was started", service="ecs")
    return native


def _note(run: Run[NativeMemory], found: dict[str, Any]) -> None:
    """Record ECS's status, its reason, each new lifecycle stage and its rollback."""
    native = _native(run)
    native.status, native.status_reason = found.get("status"), found.get("statusReason")
    stage = found.get("lifecycleStage")
    seen = [v.stage for v in native.lifecycle_stages]
    if stage and (not seen or seen[-1] != stage):
        native.lifecycle_stages.append(LifecycleVisit(stage=str(stage), at=run.now()))
        run.emit("lifecycle_stage", lifecycle_stage=stage, status=native.status)
    rollback = found.get("rollback") or {}
    if rollback:
        native.rollback_reason = rollback.get("reason")
        native.rollback_started_at = rollback.get("startedAt")


def _weight(found: dict[str, Any]) -> float | None:
    weight = (found.get("targetServiceRevision") or {}).get("requestedProductionTrafficWeight")
    return float(weight) if weight is not None else None


def _record_hook(
    run: Run[NativeMemory],
    hook: dict[str, Any],
    point: str,
    action: str,
    weight: float | None,
    reason: str | None,
) -> None:
    _native(run).hooks.append(
        HookAnswer(
            point=point,
            hook_id=str(hook.get("hookId")),
            action=action,
            at=run.now(),
            traffic_percent=weight,
            reason=reason,
        )
    )
    run.emit("hook_answered", point=point, action=action, traffic_percent=weight, reason=reason)
