"""Deployment state, progress events and per-service locks, kept in Redis.

Keys (all under ``deploy-agent:``)::

    deployment:<id>        JSON of the pipeline state (see ``tasks.state.PipelineState``)
    events:<id>            list of JSON progress events, oldest first
    result:<id>            JSON of the final DeploymentResult
    lock:<region>:<cluster>/<svc>   the per-service lock; its value is the deployment id holding it
    recent                 sorted set of deployment ids by start time
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, cast

import redis

from deploy_agent.tasks.scrub import scrub_release, scrub_state

PREFIX = "deploy-agent:"

# The lock scripts. KEYS[1] is the lock (value: the holder's token, with a TTL), KEYS[2] the
# service's last holder: set in the same operation as every acquisition, deleted on release. A
# token may take a lapsed lock back only while it is still the last holder, i.e. nobody else held
# the lock since; a deployment that took the lock, deployed and released it in between breaks that.
# ARGV: token, lock TTL in ms, last-holder TTL in s.
_ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('set', KEYS[2], ARGV[1], 'EX', ARGV[3]) return 1 end
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
return 0
"""
#: the fence: 1 held (and extended), 2 lapsed and taken back (nobody held it since), 0 lost
_FENCE = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2]) redis.call('expire', KEYS[2], ARGV[3]) return 1 end
if not holder and redis.call('get', KEYS[2]) == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) redis.call('expire', KEYS[2], ARGV[3]) return 2 end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[2]) == ARGV[1] then redis.call('del', KEYS[2]) end
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
#: how long the last holder is remembered: far beyond any lock TTL (a lapse longer is "lost")
LAST_HOLDER_TTL_SECONDS = 7 * 24 * 3600


class DeploymentStore:
    """Reads and writes one deployment's state, events and result. Values are JSON only."""

    def __init__(self, client: redis.Redis, ttl_seconds: int, event_history: int = 500) -> None:
        self._r = client
        self._ttl = ttl_seconds
        self._history = event_history

    # --- state ---------------------------------------------------------------------------------
    def create(self, deployment_id: str, state: Mapping[str, Any]) -> bool:
        """Record a new deployment; False when the id was seen before (idempotency)."""
        created = self._r.set(
            self._key("deployment", deployment_id), json.dumps(scrub_state(state)), nx=True, ex=self._ttl
        )
        if created:
            self._r.zadd(PREFIX + "recent", {deployment_id: time.time()})
        return bool(created)

    def load(self, deployment_id: str) -> dict[str, Any] | None:
        """Return the stored state, or None when unknown."""
        raw = self._r.get(self._key("deployment", deployment_id))
        return None if raw is None else cast(dict[str, Any], json.loads(cast(bytes, raw)))

    def save(self, deployment_id: str, state: Mapping[str, Any]) -> None:
        """Overwrite the stored state (the pipeline has one writer at a time: the lock holder).

        Environment and build-arg values are dropped once no stage needs them (``tasks.scrub``).
        """
        self._r.set(self._key("deployment", deployment_id), json.dumps(scrub_state(state)), ex=self._ttl)

    # --- events --------------------------------------------------------------------------------
    def append_event(self, deployment_id: str, event: Mapping[str, Any]) -> None:
        """Append a progress event and trim the history."""
        key = self._key("events", deployment_id)
        pipe = self._r.pipeline()
        pipe.rpush(key, json.dumps(event))
        pipe.ltrim(key, -self._history, -1)
        pipe.expire(key, self._ttl)
        pipe.execute()

    def events(self, deployment_id: str, start: int = 0) -> list[dict[str, Any]]:
        """Return events from index ``start`` on."""
        raw = cast(list[bytes], self._r.lrange(self._key("events", deployment_id), start, -1))
        return [json.loads(item) for item in raw]

    # --- results -------------------------------------------------------------------------------
    def save_result(self, deployment_id: str, result: Mapping[str, Any]) -> None:
        self._r.set(self._key("result", deployment_id), json.dumps(result), ex=self._ttl)

    def result(self, deployment_id: str) -> dict[str, Any] | None:
        raw = self._r.get(self._key("result", deployment_id))
        return None if raw is None else cast(dict[str, Any], json.loads(cast(bytes, raw)))

    def recent(self, limit: int = 50) -> list[str]:
        """Return the ids of the most recently started deployments, newest first."""
        ids = cast(list[bytes], self._r.zrevrange(PREFIX + "recent", 0, limit - 1))
        return [i.decode() for i in ids]

    @staticmethod
    def _key(kind: str, deployment_id: str) -> str:
        return f"{PREFIX}{kind}:{deployment_id}"


class ServiceLock:
    """One deployment per ECS service: a Redis key whose value is the holder's deployment id.

    The TTL bounds how long a crashed worker can block a service; a live deployment extends it
    through ``fence`` before every step and every mutating AWS call, and stops when that fails.
    """

    def __init__(
        self, client: redis.Redis, cluster: str, service: str, ttl_seconds: int, region: str
    ) -> None:
        self._r = client
        # Same-named services in two regions are two services: the region is part of the key.
        self.key = f"{PREFIX}lock:{region}:{cluster}/{service}"
        self.last_key = f"{PREFIX}lock-last:{region}:{cluster}/{service}"
        self._ttl_ms = ttl_seconds * 1000

    def acquire(self, token: str) -> bool:
        """Take the lock for ``token``; True also when ``token`` already holds it (redelivery)."""
        return self._script(_ACQUIRE, token) == 1

    def fence(self, token: str) -> bool:
        """Return whether ``token`` holds the lock now, extending it; checked and extended atomically.

        A lock that lapsed (a worker slower than the TTL, or killed and redelivered) is taken back
        only when nobody held it since: then nobody else can have acted on the service in between.
        """
        return self._script(_FENCE, token) > 0

    def extend(self, token: str) -> bool:
        """The fence under its older name."""
        return self.fence(token)

    def release(self, token: str) -> bool:
        """Return whether ``token`` held the lock; it no longer does (nor can take it back)."""
        return self._script(_RELEASE, token) == 1

    def holder(self) -> str | None:
        raw = self._r.get(self.key)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def _script(self, script: str, token: str) -> int:
        args = (token, str(self._ttl_ms), str(LAST_HOLDER_TTL_SECONDS))
        return int(cast(int, self._r.eval(script, 2, self.key, self.last_key, *args)))


class WaitingLine:
    """Deployments waiting for a service's lock, by the time they were accepted.

    Only the newest waiter may take the lock when it frees: older ones are ``superseded``, since
    deploying a release that a newer request replaces only delays the newer one.
    """

    def __init__(self, client: redis.Redis, cluster: str, service: str, region: str) -> None:
        self._r = client
        self.key = f"{PREFIX}waiting:{region}:{cluster}/{service}"

    def join(self, deployment_id: str, accepted_at: float) -> None:
        self._r.zadd(self.key, {deployment_id: accepted_at}, nx=True)
        self._r.expire(self.key, 7 * 24 * 3600)

    def leave(self, deployment_id: str) -> None:
        self._r.zrem(self.key, deployment_id)

    def newest(self) -> str | None:
        newest = cast(list[bytes], self._r.zrevrange(self.key, 0, 0))
        return newest[0].decode() if newest else None


#: KEYS[1] the cluster's slots (sorted set: deployment id -> time taken), KEYS[2] each holder's
#: service-lock key (hash). ARGV: deployment id, its lock key, the limit, now, force (1: take a slot
#: even when full, for a deployment that already runs), the result key prefix. A holder whose
#: result is stored (finished) or whose service lock it no longer holds (finished, or its worker
#: died and the lock lapsed) is pruned first, so a crashed deployment does not keep a slot.
_TAKE_SLOT = """
for _, member in ipairs(redis.call('zrange', KEYS[1], 0, -1)) do
  local lock = redis.call('hget', KEYS[2], member)
  if member ~= ARGV[1] and (redis.call('exists', ARGV[6] .. member) == 1
      or not lock or redis.call('get', lock) ~= member) then
    redis.call('zrem', KEYS[1], member) redis.call('hdel', KEYS[2], member)
  end
end
if redis.call('zscore', KEYS[1], ARGV[1]) or ARGV[5] == '1'
    or redis.call('zcard', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('zadd', KEYS[1], 'NX', ARGV[4], ARGV[1]) redis.call('hset', KEYS[2], ARGV[1], ARGV[2])
  redis.call('expire', KEYS[1], 604800) redis.call('expire', KEYS[2], 604800)
  return 1
end
return 0
"""


class ClusterSlots:
    """At most N deployments at once in one cluster (the operator's policy): one slot per deployment.

    A deployment takes a slot while it holds its service's lock; the slot goes with the lock (a
    holder that no longer holds its lock, or whose result is stored, is pruned on the next take),
    and ``release`` frees it at once.
    """

    def __init__(self, client: redis.Redis, cluster: str, limit: int, region: str = "") -> None:
        self._r = client
        self.key = f"{PREFIX}cluster-slots:{region}:{cluster}"
        self.locks_key = f"{PREFIX}cluster-slot-locks:{region}:{cluster}"
        self._limit = limit

    def take(self, deployment_id: str, lock_key: str, *, force: bool = False) -> bool:
        """Take a slot for ``deployment_id`` (True also when it has one); ``force``: even when full."""
        args = (deployment_id, lock_key, str(self._limit), str(time.time()), "1" if force else "0")
        keys = (self.key, self.locks_key)
        return int(cast(int, self._r.eval(_TAKE_SLOT, 2, *keys, *args, PREFIX + "result:"))) == 1

    def release(self, deployment_id: str) -> None:
        pipe = self._r.pipeline()
        pipe.zrem(self.key, deployment_id)
        pipe.hdel(self.locks_key, deployment_id)
        pipe.execute()

    def holders(self) -> list[str]:
        return [m.decode() for m in cast(list[bytes], self._r.zrange(self.key, 0, -1))]


class ReleaseLedger:
    """The last N good releases of each service, newest first: what a manual rollback can go back to.

    Task-definition revisions named here are never deregistered by the cleanup. Kept per region
    (``region``): same-named services in two regions have two ledgers. Stored definitions hold no
    environment values (``tasks.scrub``).
    """

    def __init__(self, client: redis.Redis, keep: int, region: str) -> None:
        self._r = client
        self._keep = keep
        self._region = region

    def record(self, cluster: str, service: str, release: Mapping[str, Any]) -> None:
        key = self._key(cluster, service)
        pipe = self._r.pipeline()
        pipe.lpush(key, json.dumps(scrub_release(release)))
        pipe.ltrim(key, 0, self._keep - 1)
        pipe.execute()

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
