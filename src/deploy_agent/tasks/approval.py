"""Approvals: where a deployment that waits for a human is asked about, and the tasks that decide.

The approvals live in Redis (``adapters.approval_book.ApprovalBook``). The waiting stage
(``strategies.approval.await_approval``) opens one and looks at it; the ``deploy_agent.approve``
and ``deploy_agent.deny`` tasks change ``pending`` to their decision in one Redis script, so the
first decision wins and a decision after the approval's deadline, or for a deployment that is not
waiting, is refused with an error that says why. The pipeline's state document is never written
here: its one writer stays the stage that holds the step.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, cast

from celery import shared_task
from pydantic import TypeAdapter

from deploy_agent.adapters.approval_book import ApprovalBook
from deploy_agent.core.errors import RequestRejected
from deploy_agent.core.state import ApprovalState, PipelineState
from deploy_agent.models.request import DEPLOYMENT_ID_PATTERN
from deploy_agent.tasks.runtime import Runtime, get_runtime

APPROVER_MAX = 256
TEXT_MAX = 2000
#: control characters refused in an approver or a reason (tabs and newlines are fine in a reason)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def book_for(rt: Runtime) -> ApprovalBook:
    return ApprovalBook(rt.redis, rt.settings.result_ttl_seconds, rt.policy)


# --- the decision tasks -------------------------------------------------------------------------
def parse_decision(request: Any, decision: str) -> tuple[str, str, str | None]:
    """Return (deployment_id, approver, reason or comment) of a decision, or raise ``RequestRejected``."""
    task = "approve" if decision == "approved" else "deny"
    text_field = "comment" if decision == "approved" else "reason"
    if isinstance(request, (str, bytes, bytearray)):
        try:
            request = json.loads(request)
        except ValueError:
            problem = "is text that is not JSON; send a JSON object with deployment_id and approver"
            raise RequestRejected(
                f"invalid {task} request: {problem}", [{"field": "request", "problem": problem}]
            ) from None
    if not isinstance(request, dict):
        problem = "must be a JSON object with deployment_id and approver"
        raise RequestRejected(
            f"invalid {task} request: {problem}", [{"field": "request", "problem": problem}]
        )
    errors: list[dict[str, str]] = []
    allowed = {"deployment_id", "approver", text_field}
    for name in sorted(set(request) - allowed):
        errors.append({"field": str(name), "problem": f"is not a field of a {task} request"})
    deployment_id = request.get("deployment_id")
    if not isinstance(deployment_id, str) or not deployment_id:
        errors.append({"field": "deployment_id", "problem": "is required (a string)"})
    elif not re.fullmatch(DEPLOYMENT_ID_PATTERN, deployment_id):
        errors.append({"field": "deployment_id", "problem": f"must match {DEPLOYMENT_ID_PATTERN}"})
    approver = request.get("approver")
    if not isinstance(approver, str) or not approver.strip():
        errors.append({"field": "approver", "problem": "is required (who decides, e.g. alice@laptop)"})
    elif len(approver) > APPROVER_MAX or _CONTROL.search(approver) or "\n" in approver or "\t" in approver:
        errors.append(
            {
                "field": "approver",
                "problem": f"must be at most {APPROVER_MAX} characters, without control characters",
            }
        )
    text = request.get(text_field)
    if text is None and decision == "denied":
        errors.append({"field": "reason", "problem": "is required: say why the deployment is denied"})
    elif text is not None and (not isinstance(text, str) or (decision == "denied" and not text.strip())):
        errors.append({"field": text_field, "problem": "must be a non-empty string"})
    elif isinstance(text, str) and (len(text) > TEXT_MAX or _CONTROL.search(text)):
        errors.append(
            {
                "field": text_field,
                "problem": f"must be at most {TEXT_MAX} characters, without control characters",
            }
        )
    if errors:
        summary = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
        raise RequestRejected(f"invalid {task} request: {summary}", errors)
    return cast(str, deployment_id), cast(str, approver).strip(), cast("str | None", text)


def decide(rt: Runtime, decision: str, request: Any) -> dict[str, Any]:
    """Record an approver's decision on a deployment awaiting approval; return it or ``{"error": ...}``."""
    try:
        deployment_id, approver, text = parse_decision(request, decision)
    except RequestRejected as exc:
        return {"error": {"type": exc.kind, "message": exc.message, "errors": exc.errors}}
    book = ApprovalBook(rt.redis, rt.settings.result_ttl_seconds)  # deciding needs no policy
    now = rt.now()
    found = book.decide(deployment_id, decision, approver, text, now)
    if found == "pending":
        return {
            "deployment_id": deployment_id,
            "decision": decision,
            "approver": approver,
            "decided_at": _iso(now),
        }
    current = book.look(deployment_id)
    if current is not None and current.decision == decision and current.approver == approver:
        # the same decision again (a redelivered task, a repeated command): answered as the first time
        assert current.decided_at is not None
        return {
            "deployment_id": deployment_id,
            "decision": decision,
            "approver": approver,
            "decided_at": _iso(current.decided_at),
        }
    return {"error": _refusal(rt, deployment_id, found, current)}


def _iso(moment: datetime) -> str:
    """A time as results and events write it (pydantic's JSON form: ``...Z`` for UTC)."""
    return str(TypeAdapter(datetime).dump_python(moment, mode="json"))


def _refusal(rt: Runtime, deployment_id: str, found: str, current: ApprovalState | None) -> dict[str, Any]:
    base = {"type": "not_awaiting_approval", "deployment_id": deployment_id}
    if found == "missing":
        raw = rt.store.load(deployment_id)
        if raw is None:
            return {
                **base,
                "type": "unknown_deployment",
                "message": f"no deployment {deployment_id} is known",
            }
        state = PipelineState.model_validate(raw)
        where = f"it ended {state.outcome}" if state.outcome else f"it is in phase {state.phase}"
        return {
            **base,
            "message": f"deployment {deployment_id} is not awaiting approval ({where}; "
            "only a deployment the operator's policy holds for approval can be approved or denied)",
        }
    if found == "expired":
        return {
            **base,
            "message": f"deployment {deployment_id} is past its approval deadline"
            + (f" ({current.deadline.isoformat()})" if current else "")
            + ": it ends timed_out",
        }
    if found == "timed_out":
        return {
            **base,
            "message": f"deployment {deployment_id} is no longer awaiting approval: nobody decided in time",
        }
    assert current is not None
    when = current.decided_at.isoformat() if current.decided_at else "earlier"
    return {
        **base,
        "decision": found,
        "message": f"deployment {deployment_id} is no longer awaiting approval: "
        f"{found} by {current.approver} at {when}",
    }


@shared_task(name="deploy_agent.approve", acks_late=True)  # type: ignore[untyped-decorator]
def approve(request: Any = None) -> dict[str, Any]:
    """Let a deployment awaiting approval go on: ``{"deployment_id", "approver", "comment"?}``."""
    return decide(get_runtime(), "approved", request)


@shared_task(name="deploy_agent.deny", acks_late=True)  # type: ignore[untyped-decorator]
def deny(request: Any = None) -> dict[str, Any]:
    """End a deployment awaiting approval ``denied``: ``{"deployment_id", "approver", "reason"}``."""
    return decide(get_runtime(), "denied", request)
