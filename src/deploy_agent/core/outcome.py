"""How a deployment ends: the outcome decided from what failed and whether we undid it.

Phases of a deployment (the ``phase`` written to Redis before the step that needs undoing)::

    accepted     validated and recorded; nothing touched on AWS yet
    built        image built locally
    pushed       image pushed; the repository may have been created
    registered   new task-definition revision registered (harmless: we never deregister the previous)
    updating     UpdateService sent or about to be: from here on a failure needs a rollback
    verifying    rollout completed; health-checking the release
    rolling_back the previous task definition is being put back
    done         a final result was written
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    ACCEPTED = "accepted"
    BUILT = "built"
    PUSHED = "pushed"
    REGISTERED = "registered"
    UPDATING = "updating"
    VERIFYING = "verifying"
    ROLLING_BACK = "rolling_back"
    DONE = "done"


#: phases after which the service may run something other than the previous task definition
PHASES_NEEDING_ROLLBACK = frozenset({Phase.UPDATING, Phase.VERIFYING})


class Trigger(StrEnum):
    """Why a deployment was rolled back (``rollback.trigger``)."""

    CIRCUIT_BREAKER = "circuit_breaker"
    ECS_ROLLBACK = "ecs_rollback"
    HEALTH_CHECK = "health_check"
    DEADLINE = "deadline"
    ALARM = "alarm"
    #: a Prometheus analysis gate failed (the message's ``analysis``)
    ANALYSIS = "analysis"
    ERROR = "error"
    MANUAL = "manual"


@dataclass(frozen=True)
class Failure:
    """What went wrong: an error kind and message, and the rollback trigger it implies."""

    type: str
    message: str
    trigger: Trigger


#: the failure types of a deployment that its approval ended (see ``strategies.approval``)
DENIED = "denied"
APPROVAL_TIMED_OUT = "approval_timed_out"


def needs_rollback(phase: Phase, rollback_enabled: bool, ecs_rolled_back: bool) -> bool:
    """Should we put the previous task definition back ourselves?"""
    return rollback_enabled and not ecs_rolled_back and phase in PHASES_NEEDING_ROLLBACK


def decide_outcome(
    failure: Failure | None, touched_service: bool, rolled_back: bool, rollback_failed: bool
) -> str:
    """Return the terminal outcome name (a ``deploy_agent.models.Outcome`` value)."""
    if failure is None:
        return "succeeded"
    if failure.type == "preflight_failed":
        return "rejected"  # refused before anything was touched
    if failure.type == DENIED:
        return "denied"  # an approver said no before production was touched; nothing is left behind
    if failure.type == "superseded":
        return "superseded"  # a newer deployment of the service was requested while this one waited
    if failure.trigger is Trigger.DEADLINE:
        return "timed_out"
    if rollback_failed or not touched_service:
        return "failed"
    return "rolled_back" if rolled_back else "failed"
