"""AWS API quotas shared by the whole fleet: token buckets in Redis, one per account, Region and bucket.

AWS counts the calls of every process in the account; so must we. Each bucket is a Redis hash
``deploy-agent:quota:<account>:<region>:<bucket>`` (e.g. ``...:123456789012:us-east-1:ecs:service_read``,
or ``...:ecs:DescribeServices`` when an override gives that operation a bucket of its own, see
``core.quotas``) holding ``tokens`` and ``at``. One Lua script refills it from Redis's own clock
(``TIME``: the hosts' clocks never meet) and takes a token, atomically; when the bucket is empty it
takes nothing and answers how long until a token is due. ``acquire`` sleeps that long (capped, with
jitter, so waiters do not all wake together) and asks again.

Redis unreachable or failing: the call goes ahead without a token (logged). The limiter keeps us
polite; AWS's own throttling and botocore's retries still protect the account, and a deployment
must not fail because the quota book cannot be read.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping

import redis

from deploy_agent.adapters.redis_store import PREFIX
from deploy_agent.core.quotas import Bucket, Quota, choose_bucket

log = logging.getLogger(__name__)

#: longest single sleep before asking Redis again: a bucket another host refilled or an override
#: changed is noticed within it
MAX_SLEEP_SECONDS = 2.0
#: a sleep is stretched by up to this fraction, so waiters on one bucket do not ask in lockstep
JITTER = 0.25
#: at most one "limiter unavailable" warning per this many seconds and process
_WARN_EVERY_SECONDS = 60.0

#: KEYS[1] the bucket; ARGV[1] burst, ARGV[2] tokens per second.
#: Returns {taken (1|0), seconds until a token is due (a string: Lua numbers become integers)}.
_TAKE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens, at = burst, now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
tokens = math.min(tokens, burst)
local taken, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
-- a full bucket is the same as no bucket: let idle ones go
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate + 60) * 1000))
return {taken, tostring(wait)}
"""

WaitCallback = Callable[[str, str, float], None]
"""Called with (service, operation, seconds waited) once per acquired token, 0 when none."""


def quota_key(account: str, region: str, bucket: str) -> str:
    """Return the Redis key of one bucket: ``deploy-agent:quota:<account>:<region>:<bucket>``."""
    return f"{PREFIX}quota:{account}:{region}:{bucket}"


class RedisRateLimiter:
    """Takes one token per AWS request attempt from the fleet's shared bucket, waiting when it is empty."""

    def __init__(
        self,
        client: redis.Redis,
        overrides: Mapping[str, Quota] | None = None,
        share: float = 1.0,
        *,
        on_wait: WaitCallback | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_sleep_seconds: float = MAX_SLEEP_SECONDS,
    ) -> None:
        self._r = client
        self._overrides = dict(overrides or {})
        self._share = share
        self._on_wait = on_wait
        self._sleep = sleep
        self._max_sleep = max_sleep_seconds
        self._script = client.register_script(_TAKE)
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._warned_at = -_WARN_EVERY_SECONDS
        self._lock = threading.Lock()

    def bucket(self, service: str, operation: str) -> Bucket:
        """Return the bucket (name and this fleet's quota) a call to ``service``/``operation`` draws on."""
        found = self._buckets.get((service, operation))
        if found is None:
            found = choose_bucket(service, operation, self._overrides, self._share)
            self._buckets[(service, operation)] = found
        return found

    def try_take(self, account: str, region: str, service: str, operation: str) -> float:
        """Take a token and return 0.0, or take none and return the seconds until one is due."""
        bucket = self.bucket(service, operation)
        taken, wait = self._script(
            keys=[quota_key(account, region, bucket.name)],
            args=[repr(bucket.quota.burst), repr(bucket.quota.per_second)],
        )
        return 0.0 if int(taken) == 1 else max(0.0, float(wait))

    def acquire(self, account: str, region: str, service: str, operation: str) -> float:
        """Return the seconds waited once a token is taken (or once Redis failed: the call goes ahead)."""
        started = time.monotonic()
        while True:
            try:
                wait = self.try_take(account, region, service, operation)
            except redis.RedisError as exc:
                self._warn(exc)
                break
            if wait <= 0:
                break
            self._sleep(min(self._max_sleep, wait * (1 + JITTER * random.random())))  # noqa: S311
        waited = time.monotonic() - started
        if self._on_wait is not None:
            self._on_wait(service, operation, waited)
        return waited

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._warned_at < _WARN_EVERY_SECONDS:
                return
            self._warned_at = now
        log.warning("AWS rate limiter unavailable, calling without a token: %s", exc)
