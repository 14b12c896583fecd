"""The pipeline's decisions, as pure functions: which stages run, how a stage ended, what a failing
step does next, and what the result says. ``tasks`` gathers the inputs, calls these, and applies
the answers; ``tests/core/test_orchestration.py`` holds them as tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from deploy_agent.core.outcome import APPROVAL_TIMED_OUT, DENIED, Failure, decide_outcome
from deploy_agent.core.state import PipelineState, StageState

if TYPE_CHECKING:
    from deploy_agent.models.request import DeployToECSTask

#: stages that still run after a failure: they undo and report
ALWAYS_RUN = ("rollback", "finalize")
#: failures an approval decided: nothing on production was touched, so the result names no rollback
APPROVAL_ENDINGS = (DENIED, APPROVAL_TIMED_OUT)


@dataclass(frozen=True)
class ChainPlan:
    """The stages a deployment's chain runs, and those with nothing to do for its message."""

    run: list[str]
    idle: list[str]


def plan_chain(stages: Sequence[str], request: DeployToECSTask | None) -> ChainPlan:
    """Split a strategy's stages into those to run and those with nothing to do for this message.

    A prebuilt ``image.uri`` needs no build or push, and without a health URL there is nothing to
    check; skipping them up front saves a task run (and its Redis round trips) each. A manual
    rollback (no message) runs every stage it is given.
    """
    if request is None:
        return ChainPlan(list(stages), [])
    idle = {
        "build": request.build is None,
        "push": request.image.uri is not None,
        "healthcheck": request.health_check is None or not request.health_check.url,
    }
    return ChainPlan([s for s in stages if not idle.get(s, False)], [s for s in stages if idle.get(s, False)])


class Entry(StrEnum):
    """What a stage run does when it starts."""

    RUN = "run"  # step it
    DONE = "done"  # a redelivered message for a finished stage: nothing to do
    SKIP = "skip"  # the deployment failed before (rollback: it did not): this stage has nothing to do


def decide_entry(stage: str, outcome: str, failed: bool) -> Entry:
    """Return what a run of ``stage`` does, from its record's outcome and whether the deployment failed."""
    if outcome != "running":
        return Entry.DONE
    if failed and stage not in ALWAYS_RUN:
        return Entry.SKIP
    if stage == "rollback" and not failed:
        return Entry.SKIP  # nothing to undo
    return Entry.RUN


class OnError(StrEnum):
    """What a step that raised an AWS error does next."""

    WAIT = "wait"  # a transient failure inside the deadline: look again later
    RETRY_UNDO = "retry_undo"  # undoing never gives up on an error until its own timeout
    FAIL = "fail"  # the deployment fails (or, in rollback, the rollback fails)


def decide_on_error(stage: str, transient: bool, past_deadline: bool, undo_out_of_time: bool) -> OnError:
    """Return how a step of ``stage`` that raised an AWS error goes on."""
    if stage == "rollback":
        return OnError.FAIL if undo_out_of_time else OnError.RETRY_UNDO
    if transient and not past_deadline:
        return OnError.WAIT
    return OnError.FAIL


def decide_stage_outcome(
    stage: str, skipped: bool, failed: bool, failed_in_earlier_stage: bool, rollback_failed: bool
) -> str:
    """Return how a finished stage reads: ``succeeded``, ``failed`` or ``skipped``.

    ``failed``: the deployment has a failure now; ``failed_in_earlier_stage``: another stage's record
    reads failed already (the failure is that stage's, not this one's).
    """
    if skipped:
        return "skipped"
    if failed and stage not in ALWAYS_RUN and not failed_in_earlier_stage:
        return "failed"
    if stage == "rollback" and rollback_failed:
        return "failed"  # an undo that did not settle is a failed stage, whatever the strategy said
    return "succeeded"


def decide_rollback_info(
    state: PipelineState, failure: Failure | None, requested_by: str | None
) -> dict[str, Any] | None:
    """Return the result's ``rollback``: who asked for it and why, and the revision it put back."""
    if state.manual_rollback:
        return {
            "trigger": "manual",
            "reason": f"rollback requested by {requested_by or 'an operator'}",
            "to_task_definition_arn": state.task_definition_arn,
        }
    touched = state.update_requested_at is not None
    if (
        failure is not None
        and touched
        and (state.rollback_requested or state.ecs_rolled_back)
        and failure.type not in APPROVAL_ENDINGS  # production untouched: only the new release removed
    ):
        return {
            "trigger": str(failure.trigger),
            "reason": failure.message,
            "to_task_definition_arn": state.previous_task_definition_arn,
        }
    return None


def plan_result(state: PipelineState, request: DeployToECSTask, order: Sequence[str]) -> dict[str, Any]:
    """Return the final ``DeploymentResult`` (as its JSON fields) of a state whose stages have all run.

    ``request`` is the deployment's message; ``order`` the strategy's stage order (records are shown in it).
    """
    failure = state.failure.as_failure() if state.failure else None
    touched = state.update_requested_at is not None
    finished = state.finished_at or state.started_at
    return {
        "deployment_id": state.deployment_id,
        "outcome": decide_outcome(failure, touched, state.rollback_done, state.rollback_failed),
        "strategy": state.strategy,
        "cluster_name": state.cluster,
        "service_name": state.service,
        "image_uri": state.image_uri,
        "task_definition_arn": state.task_definition_arn,
        "previous_task_definition_arn": state.previous_task_definition_arn,
        "started_at": state.started_at,
        "finished_at": finished,
        "duration_seconds": round((finished - state.started_at).total_seconds(), 3),
        "stages": [s.model_dump(mode="json") for s in _in_order(state.stages, order)],
        "rollback": decide_rollback_info(state, failure, request.requested_by),
        "diagnostics": {
            "stopped_tasks": state.diagnostics.get("stopped_tasks", []),
            "service_events": state.diagnostics.get("service_events", []),
            "target_health": state.diagnostics.get("target_health", []),
        },
        "error": None if failure is None else {"type": failure.type, "message": failure.message},
        "errors": state.rejections,
        "zero_downtime": state.zero_downtime,
        "analysis": list(state.analysis),
        "approval": _approval(state),
        "service_deployment": _service_deployment(state),
        "requested_by": request.requested_by,
        "labels": dict(request.labels),
    }


def _in_order(stages: Sequence[StageState], order: Sequence[str]) -> list[StageState]:
    """The stage records in the strategy's order (skipped ones were recorded up front)."""
    return sorted(stages, key=lambda s: order.index(s.name) if s.name in order else len(order))


def _service_deployment(state: PipelineState) -> dict[str, Any] | None:
    """The result's ``service_deployment``: ECS's native deployment as followed (None: not native)."""
    native = state.service_deployment
    if native is None:
        return None
    fields = native.model_dump()
    return {"service_deployment_arn": fields.pop("arn"), **fields}


def _approval(state: PipelineState) -> dict[str, Any] | None:
    """The result's ``approval``: the rule, the times, the decision and who made it (None: none needed)."""
    approval = state.approval
    if approval is None:
        return None
    return {
        "rule": approval.rule,
        "requested_at": approval.requested_at,
        "decided_at": approval.decided_at,
        "decision": approval.decision or "timed_out",
        "approver": approval.approver,
        "reason": approval.reason,
    }
