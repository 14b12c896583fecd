"""The locks deploy-agent keeps in Redis: per service, per cluster (slots), per deployment step.

Keys (all under ``deploy-agent:``)::

    lock:<region>:<cluster>/<svc>        the per-service lock; its value is the holder's deployment id
    lock-last:<region>:<cluster>/<svc>   the service's last holder (see the scripts below)
    cluster-slots:<region>:<cluster>     deployments holding one of the cluster's slots
    stepping:<id>                        a deployment's stage being stepped (``StepMutex``)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import redis

from deploy_agent.adapters.redis_store import PREFIX

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
if holder == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
if not holder and redis.call('get', KEYS[2]) == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) redis.call('expire', KEYS[2], ARGV[3]) return 2 end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[2]) == ARGV[1] then redis.call('del', KEYS[2]) end
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
#: how long the last holder is remembered from when it took the lock: far beyond any lock TTL and
#: any deployment's deadline (a lapse longer is "lost"), so holding it needs no renewal
LAST_HOLDER_TTL_SECONDS = 7 * 24 * 3600


class ServiceLock:
    """One deployment per ECS service: a Redis key whose value is the holder's deployment id.

    The TTL bounds how long a crashed worker can block a service; a live deployment extends it
    through ``fence`` before every task run's first step and every mutating AWS call, and stops
    when that fails.
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


class StepMutex:
    """One step of a deployment at a time, across processes: a Redis key with a random owner."""

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, client: redis.Redis, deployment_id: str, ttl_seconds: float) -> None:
        self._r = client
        self.key = self.key_for(deployment_id)
        # A step never outlives the task time limit; a killed one frees the key within it, and
        # a redelivery comes only after the visibility timeout, which is above that limit.
        self._ttl_ms = max(1000, int(ttl_seconds * 1000))

    @staticmethod
    def key_for(deployment_id: str) -> str:
        """Return the mutex's key (the agenda takes it together with a stage's lease)."""
        return f"{PREFIX}stepping:{deployment_id}"

    @classmethod
    def release_owned(cls, client: redis.Redis, key: str, owner: str) -> None:
        """Release the mutex at ``key`` when ``owner`` still holds it."""
        client.eval(cls._RELEASE, 1, key, owner)

    @contextmanager
    def held(self) -> Iterator[bool]:
        """Yield whether this caller holds the mutex for the block (False: another copy steps)."""
        owner = uuid.uuid4().hex
        if not self._r.set(self.key, owner, nx=True, px=self._ttl_ms):
            yield False
            return
        try:
            yield True
        finally:
            self._r.eval(self._RELEASE, 1, self.key, owner)
