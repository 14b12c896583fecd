"""The approvals of deployments, kept in Redis: the ``ApprovalGate`` the strategies wait on.

Key (under ``deploy-agent:``)::

    approval:<id>   hash: status (pending | approved | denied | timed_out), rule, requested_at,
                    deadline, deadline_ts, and once decided approver, decided_at, reason

A decision changes ``pending`` in one Redis script, so the first decision wins and a decision after
the approval's deadline, or for a deployment that is not waiting, is refused (``_DECIDE``).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import redis

from deploy_agent.adapters.redis_store import PREFIX
from deploy_agent.core.state import ApprovalState
from deploy_agent.models.policy import ApprovalRule, Policy

_OPEN = """
if redis.call('exists', KEYS[1]) == 0 then
  redis.call('hset', KEYS[1], 'status', 'pending', 'rule', ARGV[1], 'requested_at', ARGV[2],
             'deadline', ARGV[3], 'deadline_ts', ARGV[4])
  redis.call('expire', KEYS[1], ARGV[5])
end
return redis.call('hgetall', KEYS[1])
"""
#: ARGV: decision, approver, decided_at, reason, now (epoch s). Returns the status it found:
#: 'pending' (and the decision is ours now), 'expired' (past the deadline), 'missing', or the decision
_DECIDE = """
local status = redis.call('hget', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'pending' then return status end
if ARGV[1] ~= 'timed_out' and tonumber(ARGV[5]) >= tonumber(redis.call('hget', KEYS[1], 'deadline_ts')) then
  return 'expired'
end
redis.call('hset', KEYS[1], 'status', ARGV[1], 'approver', ARGV[2], 'decided_at', ARGV[3], 'reason', ARGV[4])
return 'pending'
"""


def approval_key(deployment_id: str) -> str:
    return f"{PREFIX}approval:{deployment_id}"


class ApprovalBook:
    """The approvals of deployments, in Redis (the ``ApprovalGate`` the strategies wait on)."""

    def __init__(self, client: redis.Redis, ttl_seconds: int, policy: Policy | None = None) -> None:
        self._r = client
        self._ttl = ttl_seconds
        self._policy = policy

    def rule_for(self, region: str, cluster: str, service: str) -> ApprovalRule | None:
        return None if self._policy is None else self._policy.approval_for(region, cluster, service)

    def open(
        self, deployment_id: str, rule: str, requested_at: datetime, deadline: datetime
    ) -> ApprovalState:
        args = (
            rule,
            requested_at.isoformat(),
            deadline.isoformat(),
            repr(deadline.timestamp()),
            str(self._ttl),
        )
        raw = cast(list[bytes], self._r.eval(_OPEN, 1, approval_key(deployment_id), *args))
        record = _as_state(dict(zip(raw[::2], raw[1::2], strict=True)))
        assert record is not None
        return record

    def look(self, deployment_id: str) -> ApprovalState | None:
        raw = cast(dict[bytes, bytes], self._r.hgetall(approval_key(deployment_id)))
        return _as_state(raw)

    def decide(
        self, deployment_id: str, decision: str, approver: str | None, reason: str | None, now: datetime
    ) -> str:
        """Record ``decision`` if the approval still waits; return what was found (see ``_DECIDE``)."""
        args = (decision, approver or "", now.isoformat(), reason or "", repr(now.timestamp()))
        found = self._r.eval(_DECIDE, 1, approval_key(deployment_id), *args)
        return found.decode() if isinstance(found, bytes) else str(found)

    def expire(self, deployment_id: str, now: datetime) -> ApprovalState | None:
        self.decide(deployment_id, "timed_out", None, None, now)
        return self.look(deployment_id)


def _as_state(raw: dict[bytes, bytes]) -> ApprovalState | None:
    if not raw:
        return None
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    status = fields.get("status", "pending")
    return ApprovalState(
        rule=fields["rule"],
        requested_at=datetime.fromisoformat(fields["requested_at"]),
        deadline=datetime.fromisoformat(fields["deadline"]),
        decision=None if status == "pending" else status,
        approver=fields.get("approver") or None,
        decided_at=datetime.fromisoformat(fields["decided_at"]) if fields.get("decided_at") else None,
        reason=fields.get("reason") or None,
    )
