"""What the status page and its API show of a deployment: plain dicts of chosen fields only.

``describe_*`` read the store; the rest are pure functions of a deployment's state (and, for the
listener-driven strategies, its progress events). Only the fields named here leave the worker: never
the request (it may carry build args or environment values), never an ARN or a query.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from deploy_agent.adapters.redis_store import DeploymentStore
from deploy_agent.core.state import PipelineState

MAX_DEPLOYMENTS = 50
RUNNING = "running"
#: event fields safe to show; others (build output lines, ARNs, holders) stay in Redis
EVENT_FIELDS = ("at", "event", "stage", "outcome", "step", "trigger")
#: strategies whose traffic steps are only in the progress events (``traffic_shifted``)
LISTENER_STRATEGIES = frozenset({"blue_green", "canary", "linear"})
#: failure types that name the gate kind that failed (the ``*_gate_failed`` ones name it themselves)
GATE_OF_FAILURE = {
    "analysis_failed": "analysis",
    "health_check_failed": "health",
    "deadline_exceeded": "deadline",
}
#: what made ECS roll its own deployment back, by trigger (``core.ecs_native.assess_rollback_cause``)
GATE_OF_ECS_TRIGGER = {"alarm": "alarm", "circuit_breaker": "circuit_breaker", "deadline": "hook_timeout"}
_GATE_SUFFIX = "_gate_failed"


# --- pure: one deployment ----------------------------------------------------------------------
def summarize_deployment(
    state: PipelineState, now: datetime, events: Iterable[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Return what the page and the API show of one deployment; a running one is measured to ``now``.

    ``events`` are its progress events, needed only for a listener-driven strategy's traffic steps.
    """
    end = state.finished_at or now
    return {
        "id": state.deployment_id,
        "cluster": state.cluster,
        "service": state.service,
        "strategy": state.strategy,
        "phase": "awaiting_approval" if state.awaiting_approval else str(state.phase),
        "outcome": state.outcome or RUNNING,
        "started_at": state.started_at.isoformat(),
        "finished_at": state.finished_at.isoformat() if state.finished_at else None,
        "duration_seconds": round(max(0.0, (end - state.started_at).total_seconds()), 3),
        "stages": [
            {
                "name": stage.name,
                "started_at": stage.started_at.isoformat(),
                "finished_at": stage.finished_at.isoformat() if stage.finished_at else None,
                "outcome": stage.outcome,
            }
            for stage in state.stages
        ],
        "ended_because": assess_ending(state),
        "gates": list_measurements(state),
        "traffic_steps": list_traffic_steps(state, events),
        "service_deployment": summarize_service_deployment(state),
    }


def assess_ending(state: PipelineState) -> dict[str, Any] | None:
    """Return why a finished deployment did not succeed: outcome, trigger, reason, gate and step.

    None while it runs and once it succeeded. The gate kind comes from the failure's type; the step
    from the last ROLLBACK hook (native strategies), else from the failure message's ``"<step>: "``
    prefix, which every gate failure carries.
    """
    if state.outcome is None or state.outcome == "succeeded":
        return None
    failure = state.failure
    gate = _gate_kind(failure.type, str(failure.trigger)) if failure is not None else None
    step = _failed_step(state, gate)
    reason = failure.message if failure is not None else None
    if reason is not None and step is not None and reason.startswith(f"{step}: "):
        reason = reason[len(step) + 2 :]
    native = state.service_deployment
    return {
        "outcome": state.outcome,
        "trigger": str(failure.trigger) if failure is not None else None,
        "type": failure.type if failure is not None else None,
        "reason": reason,
        "gate": gate,
        "gate_name": _failed_analysis_gate(state, step) if gate == "analysis" else None,
        "step": step,
        "rolled_back": state.rollback_done or state.ecs_rolled_back,
        "rollback_failure": state.rollback_failure,
        "ecs_rollback_reason": native.rollback_reason if native is not None else None,
    }


def list_measurements(state: PipelineState) -> list[dict[str, Any]]:
    """Return the analysis gates' measurements, oldest first: gate, step, value, verdict and time."""
    return [
        {
            "gate": m.get("gate"),
            "step": m.get("step"),
            "value": _finite(m.get("value")),
            "verdict": m.get("verdict"),
            "at": m.get("at"),
        }
        for m in state.analysis
    ]


def list_traffic_steps(state: PipelineState, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return each traffic step taken, in order.

    Listener-driven strategies: each listener change (label, weights by target group, time; the
    listener put back as ``restored``), with the zero-downtime watch's counts for that change.
    Native strategies: each PAUSE hook answered (point, the new revision's share, action, time).
    """
    native = state.service_deployment
    if native is not None:
        return [
            {
                "point": hook.point,
                "traffic_percent": hook.traffic_percent,
                "action": hook.action,
                "at": hook.at.isoformat(),
            }
            for hook in native.hooks
        ]
    steps: list[dict[str, Any]] = []
    checked: dict[str, Mapping[str, Any]] = {}
    for event in events:
        kind = event.get("event")
        if kind == "traffic_shifted" and isinstance(event.get("weights"), Mapping):
            weights = {str(k): v for k, v in event["weights"].items() if isinstance(v, int | float)}
            steps.append({"label": str(event.get("label", "")), "weights": weights, "at": event.get("at")})
        elif kind == "traffic_restored":
            steps.append({"label": "restored", "weights": {}, "at": event.get("at")})
        elif kind == "zero_downtime_checked":
            checked[str(event.get("label", ""))] = event
    for step in steps:
        report = checked.get(step["label"])
        if report is not None:
            step["requests"], step["failures"] = report.get("requests"), report.get("failures")
    return steps


def summarize_service_deployment(state: PipelineState) -> dict[str, Any] | None:
    """Return ECS's service deployment of a native strategy: status, reasons and lifecycle stages."""
    native = state.service_deployment
    if native is None:
        return None
    return {
        "status": native.status,
        "status_reason": native.status_reason,
        "rollback_reason": native.rollback_reason,
        "lifecycle_stages": [{"stage": v.stage, "at": v.at.isoformat()} for v in native.lifecycle_stages],
    }


def _finite(value: Any) -> float | None:
    # NaN and infinities are not JSON: the API would send text no parser accepts
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _gate_kind(failure_type: str, trigger: str) -> str | None:
    if failure_type.endswith(_GATE_SUFFIX):
        return failure_type[: -len(_GATE_SUFFIX)]
    if failure_type == "ecs_rolled_back":
        return GATE_OF_ECS_TRIGGER.get(trigger)
    return GATE_OF_FAILURE.get(failure_type)


def _failed_step(state: PipelineState, gate: str | None) -> str | None:
    native = state.service_deployment
    if native is not None:
        rollbacks = [hook.point for hook in native.hooks if hook.action == "ROLLBACK"]
        if rollbacks:
            return rollbacks[-1]
    failure = state.failure
    if failure is None or gate is None or not (failure.type.endswith(_GATE_SUFFIX) or gate == "analysis"):
        return None
    step, colon, _ = failure.message.partition(": ")
    return step if colon and step else None


def _failed_analysis_gate(state: PipelineState, step: str | None) -> str | None:
    """Return the analysis gate whose measurement failed the step (the last failing one there)."""
    for measurement in reversed(state.analysis):
        if measurement.get("verdict") != "successful" and (step is None or measurement.get("step") == step):
            gate = measurement.get("gate")
            return str(gate) if gate is not None else None
    return None


# --- the store ---------------------------------------------------------------------------------
def describe_recent(
    store: DeploymentStore, now: datetime, limit: int = MAX_DEPLOYMENTS
) -> list[dict[str, Any]]:
    """Return summaries of the most recently started deployments, newest first."""
    summaries = []
    for deployment_id in store.recent(limit):
        state = _load(store, deployment_id)
        if state is not None:
            summaries.append(summarize_deployment(state, now, _traffic_events(store, state)))
    return summaries


def describe_deployment(store: DeploymentStore, deployment_id: str, now: datetime) -> dict[str, Any] | None:
    """Return one deployment's summary, its failure and its progress events; None when unknown."""
    state = _load(store, deployment_id)
    if state is None:
        return None
    failure = state.failure
    events = store.events(deployment_id)
    return {
        **summarize_deployment(state, now, events),
        "error": None
        if failure is None
        else {"type": failure.type, "message": failure.message, "trigger": str(failure.trigger)},
        "events": [_safe_event(e) for e in events],
    }


def _traffic_events(store: DeploymentStore, state: PipelineState) -> list[dict[str, Any]]:
    # Only the listener-driven strategies keep their traffic steps in the events alone; reading the
    # others' (hundreds of build lines) on every refresh of the page would buy nothing.
    if state.strategy not in LISTENER_STRATEGIES:
        return []
    return store.events(state.deployment_id)


def _load(store: DeploymentStore, deployment_id: str) -> PipelineState | None:
    raw = store.load(deployment_id)
    if raw is None:
        return None
    try:
        return PipelineState.model_validate(raw)
    except ValidationError:
        return None  # written by another version of the worker: not worth failing the page for


def _safe_event(event: dict[str, Any]) -> dict[str, Any]:
    shown = {k: event[k] for k in EVENT_FIELDS if k in event}
    error = event.get("error")
    if isinstance(error, dict):
        shown["error"] = {"type": error.get("type"), "message": error.get("message")}
    return shown
