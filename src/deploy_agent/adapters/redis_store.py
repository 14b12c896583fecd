"""Deployment state, progress events, waiting lines and the release ledger, kept in Redis.

Keys (all under ``deploy-agent:``; the locks are in ``adapters.redis_locks``)::

    deployment:<id>        JSON of the pipeline state (see ``tasks.state.PipelineState``)
    events:<id>            list of JSON progress events, oldest first
    result:<id>            JSON of the final DeploymentResult
    chain-published:<id>   set once the deployment's stage chain reached the broker
    recent                 sorted set of deployment ids by start time
    waiting:<region>:<cluster>/<svc>   deployments waiting for the service's lock
    ledger:<region>:<cluster>/<svc>    the last good releases of the service
    registered:<region>:<family>       task-definition revisions deploy-agent registered
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import redis

from deploy_agent.core.scrub import scrub_release, scrub_state

PREFIX = "deploy-agent:"

#: KEYS: the state, the recent set, the events; ARGV: state JSON, TTL (s), start time, deployment id,
#: then the first events
_CREATE = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('zadd', KEYS[2], ARGV[3], ARGV[4])
if #ARGV > 4 then
  redis.call('rpush', KEYS[3], unpack(ARGV, 5))
  redis.call('expire', KEYS[3], ARGV[2])
end
return 1
"""

#: KEYS: the state, the events; ARGV: state JSON, TTL (s), events kept, then the events to append
_SAVE_WITH_EVENTS = """
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
local length = redis.call('rpush', KEYS[2], unpack(ARGV, 4))
if length == #ARGV - 3 then redis.call('expire', KEYS[2], ARGV[2]) end
if length > tonumber(ARGV[3]) then redis.call('ltrim', KEYS[2], -tonumber(ARGV[3]), -1) end
return length
"""

#: KEYS: the result, the state, the events; ARGV: result JSON, state JSON, TTL (s), events kept,
#: then the events to append
_SAVE_FINAL = """
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[3])
if #ARGV > 4 then
  local length = redis.call('rpush', KEYS[3], unpack(ARGV, 5))
  if length > tonumber(ARGV[4]) then redis.call('ltrim', KEYS[3], -tonumber(ARGV[4]), -1) end
end
redis.call('expire', KEYS[3], ARGV[3])
return 1
"""

#: this thread's events held for the next state save, by deployment (``events_with_next_save``)
_HELD = threading.local()


def _held_events() -> dict[str, tuple[DeploymentStore, list[str]]] | None:
    """This thread's held events, or None outside ``events_with_next_save``."""
    return cast("dict[str, tuple[DeploymentStore, list[str]]] | None", getattr(_HELD, "events", None))


@contextmanager
def events_with_next_save() -> Iterator[None]:
    """Hold the progress events this thread appends until the next state save, which writes them
    with the state in one step; what no save took is appended when the block ends.

    For an event and the save that follows it at once (a stage's end): one round trip, not two,
    and nothing between them that a kill could fall into.
    """
    if _held_events() is not None:
        yield
        return
    _HELD.events = {}
    try:
        yield
    finally:
        held = _held_events() or {}
        _HELD.events = None
        for deployment_id, (store, events) in held.items():
            if events:
                store._push(deployment_id, events)


#: KEYS: a waiting line; ARGV: deployment id, accepted at, TTL (s). Returns the newest waiter.
_JOIN = """
redis.call('zadd', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('expire', KEYS[1], ARGV[3])
return redis.call('zrevrange', KEYS[1], 0, 0)[1]
"""


class DeploymentStore:
    """Reads and writes one deployment's state, events and result. Values are JSON only."""

    def __init__(self, client: redis.Redis, ttl_seconds: int, event_history: int = 500) -> None:
        self._r = client
        self._ttl = ttl_seconds
        self._history = event_history

    # --- state ---------------------------------------------------------------------------------
    def create(
        self, deployment_id: str, state: Mapping[str, Any], events: Sequence[Mapping[str, Any]] = ()
    ) -> dict[str, Any] | None:
        """Record a new deployment with its first ``events`` and return it as stored; None (and
        nothing written) when the id was seen before. One round trip."""
        stored = scrub_state(state)
        keys = [self._key("deployment", deployment_id), PREFIX + "recent", self._key("events", deployment_id)]
        args = [json.dumps(stored), str(self._ttl), repr(time.time()), deployment_id]
        args += [json.dumps(event) for event in events]
        return stored if self._r.eval(_CREATE, 3, *keys, *args) else None

    def load(self, deployment_id: str) -> dict[str, Any] | None:
        """Return the stored state, or None when unknown."""
        raw = self._r.get(self._key("deployment", deployment_id))
        return None if raw is None else cast(dict[str, Any], json.loads(cast(bytes, raw)))

    def save(self, deployment_id: str, state: Mapping[str, Any]) -> None:
        """Overwrite the stored state (the pipeline has one writer at a time: the lock holder).

        Environment and build-arg values are dropped once no stage needs them (``core.scrub``).
        """
        state_json = json.dumps(scrub_state(state))
        held = _held_events()
        events = held.pop(deployment_id, (self, []))[1] if held is not None else []
        if not events:
            self._r.set(self._key("deployment", deployment_id), state_json, ex=self._ttl)
            return
        keys = [self._key("deployment", deployment_id), self._key("events", deployment_id)]
        self._r.eval(_SAVE_WITH_EVENTS, 2, *keys, state_json, str(self._ttl), str(self._history), *events)

    # --- events --------------------------------------------------------------------------------
    def append_event(self, deployment_id: str, event: Mapping[str, Any]) -> None:
        """Append a progress event; trim the history only once it is longer than kept.

        One command per event in the common case (a deployment emits about twenty): the first event
        sets the history's expiry and ``save_final`` renews it, instead of an EXPIRE and an LTRIM
        in a MULTI with every event (five commands each, a sixth of a deployment's Redis traffic).
        """
        held = _held_events()
        if held is not None:
            held.setdefault(deployment_id, (self, []))[1].append(json.dumps(event))
            return
        self._push(deployment_id, [json.dumps(event)])

    def _push(self, deployment_id: str, events: list[str]) -> None:
        key = self._key("events", deployment_id)
        length = int(cast(int, self._r.rpush(key, *events)))
        if length == len(events):
            self._r.expire(key, self._ttl)
        if length > self._history:
            self._r.ltrim(key, -self._history, -1)

    def events(self, deployment_id: str, start: int = 0) -> list[dict[str, Any]]:
        """Return events from index ``start`` on."""
        raw = cast(list[bytes], self._r.lrange(self._key("events", deployment_id), start, -1))
        return [json.loads(item) for item in raw]

    # --- results -------------------------------------------------------------------------------
    def save_final(
        self,
        deployment_id: str,
        result: Mapping[str, Any],
        state: Mapping[str, Any],
        events: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Store the final result, the state that says so and the last ``events``, in one step;
        the event history lives as long as the result from now on."""
        keys = [self._key(kind, deployment_id) for kind in ("result", "deployment", "events")]
        args = [json.dumps(result), json.dumps(scrub_state(state)), str(self._ttl), str(self._history)]
        self._r.eval(_SAVE_FINAL, 3, *keys, *args, *(json.dumps(event) for event in events))

    def result(self, deployment_id: str) -> dict[str, Any] | None:
        raw = self._r.get(self._key("result", deployment_id))
        return None if raw is None else cast(dict[str, Any], json.loads(cast(bytes, raw)))

    # --- the chain mark ---------------------------------------------------------------------------
    def is_chain_published(self, deployment_id: str) -> bool:
        """Return whether this deployment's stage chain was marked as handed to the broker."""
        return bool(self._r.exists(self._key("chain-published", deployment_id)))

    def mark_chain_published(self, deployment_id: str) -> None:
        """Note that this deployment's stage chain reached the broker (kept as long as its result)."""
        self._r.set(self._key("chain-published", deployment_id), "1", ex=self._ttl)

    def recent(self, limit: int = 50) -> list[str]:
        """Return the ids of the most recently started deployments, newest first."""
        ids = cast(list[bytes], self._r.zrevrange(PREFIX + "recent", 0, limit - 1))
        return [i.decode() for i in ids]

    @staticmethod
    def _key(kind: str, deployment_id: str) -> str:
        return f"{PREFIX}{kind}:{deployment_id}"


class WaitingLine:
    """Deployments waiting for a service's lock, by the time they were accepted.

    Only the newest waiter may take the lock when it frees: older ones are ``superseded``, since
    deploying a release that a newer request replaces only delays the newer one.
    """

    def __init__(self, client: redis.Redis, cluster: str, service: str, region: str) -> None:
        self._r = client
        self.key = f"{PREFIX}waiting:{region}:{cluster}/{service}"

    def join(self, deployment_id: str, accepted_at: float) -> str:
        """Join the line (once: a second join keeps the first time); return the newest waiter."""
        newest = self._r.eval(_JOIN, 1, self.key, deployment_id, repr(accepted_at), str(7 * 24 * 3600))
        return cast(bytes, newest).decode()

    def leave(self, deployment_id: str) -> None:
        self._r.zrem(self.key, deployment_id)

    def newest(self) -> str | None:
        newest = cast(list[bytes], self._r.zrevrange(self.key, 0, 0))
        return newest[0].decode() if newest else None


#: KEYS: a service's ledger; ARGV: the release JSON, how many to keep
_RECORD_RELEASE = """
redis.call('lpush', KEYS[1], ARGV[1])
redis.call('ltrim', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1
"""


class ReleaseLedger:
    """The last N good releases of each service, newest first: what a manual rollback can go back to.

    Task-definition revisions named here are never deregistered by the cleanup. Kept per region
    (``region``): same-named services in two regions have two ledgers. Stored definitions hold no
    environment values (``core.scrub``).
    """

    def __init__(self, client: redis.Redis, keep: int, region: str) -> None:
        self._r = client
        self._keep = keep
        self._region = region

    def record(self, cluster: str, service: str, release: Mapping[str, Any]) -> None:
        """Put ``release`` first, keeping the newest N (one script: no reader sees N + 1)."""
        self._r.eval(
            _RECORD_RELEASE,
            1,
            self._key(cluster, service),
            json.dumps(scrub_release(release)),
            str(self._keep),
        )

    def releases(self, cluster: str, service: str) -> list[dict[str, Any]]:
        raw = cast(list[bytes], self._r.lrange(self._key(cluster, service), 0, -1))
        return [json.loads(item) for item in raw]

    def definition_of(self, cluster: str, service: str, task_definition_arn: str) -> dict[str, Any] | None:
        """Return the RegisterTaskDefinition kwargs stored with a release of this revision, if any.

        Kept so a rollback can register the revision again after it was deregistered and deleted.
        """
        for release in self.releases(cluster, service):
            if release.get("task_definition_arn") != task_definition_arn:
                continue
            if not release.get("register_kwargs"):
                continue
            if release.get("environment_values_dropped"):
                return None  # registering it again would start its containers without their environment
            return dict(release["register_kwargs"])
        return None

    def remember_registered(self, family: str, task_definition_arn: str) -> None:
        """Note a revision we registered: only ours are ever candidates for cleanup."""
        self._r.rpush(f"{PREFIX}registered:{self._region}:{family}", task_definition_arn)

    def registered(self, family: str) -> list[str]:
        raw = cast(list[bytes], self._r.lrange(f"{PREFIX}registered:{self._region}:{family}", 0, -1))
        return [item.decode() for item in raw]

    def forget_registered(self, family: str, task_definition_arn: str) -> None:
        self._r.lrem(f"{PREFIX}registered:{self._region}:{family}", 0, task_definition_arn)

    def _key(self, cluster: str, service: str) -> str:
        return f"{PREFIX}ledger:{self._region}:{cluster}/{service}"
