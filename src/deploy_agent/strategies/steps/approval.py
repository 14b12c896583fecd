"""The approval gate: a deployment the operator's policy marks waits for a human before production.

The strategies call :func:`await_approval` at the point where the next step would touch production:
rolling right before its UpdateService, blue-green and canary once the new release runs beside the
old one and passed its checks, before the listener moves. While nobody has decided, the step
returns ``Progress.wait`` like every other waiting step: the stage task schedules its next look
(``approval_poll_seconds``) and gives its worker process back. The decision itself is written to
Redis by the ``deploy_agent.approve`` / ``deploy_agent.deny`` tasks (``tasks.approval``), first one
wins; the step reads it and goes on (approved), or fails the deployment with nothing touched on
production (``denied``, or ``approval_timed_out`` past the approval's deadline: outcome ``timed_out``).
Everything it knows is in Redis, so a worker killed while it waits leaves a deployment still waiting.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from deploy_agent.core.outcome import APPROVAL_TIMED_OUT, DENIED, Trigger
from deploy_agent.core.state import ApprovalState
from deploy_agent.strategies.base import Progress, Run


def await_approval(run: Run[Any]) -> Progress:
    """Wait for a human's decision when the policy asks for one; finished once approved or ended."""
    state = run.state
    if state.approval is not None and state.approval.decision is not None:
        return Progress.finished()  # decided before (a redelivered step): a denial failed the state then
    gate = run.ports.approvals
    if gate is None or state.manual_rollback:
        return Progress.finished()  # no policy; an operator's rollback is a human's decision already
    now = run.now()
    if state.approval is None:
        rule = gate.rule_for(state.region, state.cluster, state.service)
        if rule is None:
            return Progress.finished()
        deadline = min(now + timedelta(seconds=rule.timeout_seconds), state.deadline)
        state.approval = gate.open(state.deployment_id, rule.name, now, deadline)
        run.emit(
            "awaiting_approval",
            rule=rule.name,
            requested_at=state.approval.requested_at.isoformat(),
            deadline=state.approval.deadline.isoformat(),
        )
        run.save()  # waiting is durable before the first wait: a restarted worker waits on
    asked = state.approval
    decided = gate.look(state.deployment_id)
    if decided is None:  # the record vanished from Redis (flushed): ask again, with the same times
        decided = gate.open(state.deployment_id, asked.rule, asked.requested_at, asked.deadline)
    if decided.decision is None:
        left = (asked.deadline - now).total_seconds()
        if left > 0:
            return Progress.wait(min(run.tunables.approval_poll_seconds, left))
        decided = gate.expire(state.deployment_id, now) or decided.model_copy(
            update={"decision": "timed_out"}
        )
    state.approval = decided
    return _decided(run, decided)


def _decided(run: Run[Any], approval: ApprovalState) -> Progress:
    state = run.state
    when = approval.decided_at.isoformat() if approval.decided_at else None
    if approval.decision == "approved":
        run.emit(
            "approved",
            rule=approval.rule,
            approver=approval.approver,
            comment=approval.reason,
            decided_at=when,
        )
        return Progress.finished()
    if approval.decision == "denied":
        state.fail(DENIED, f"denied by {approval.approver}: {approval.reason}", Trigger.ERROR)
        run.emit(
            "denied", rule=approval.rule, approver=approval.approver, reason=approval.reason, decided_at=when
        )
        return Progress.finished()
    seconds = (approval.deadline - approval.requested_at).total_seconds()
    state.fail(
        APPROVAL_TIMED_OUT,
        f"nobody approved the deployment within {seconds:.0f} s (approval rule {approval.rule!r})",
        Trigger.DEADLINE,
    )
    run.emit("approval_timed_out", rule=approval.rule, deadline=approval.deadline.isoformat())
    return Progress.finished()
