"""The cluster watcher: one batched look per cluster, shared by all deployments waiting on ECS.

One worker host at a time (a Redis lease, ``watcher-leader``) describes the in-flight services of
every cluster, ten per DescribeServices call and ``LOOK_CALLS_AT_ONCE`` calls at a time, stores the
snapshots the stages read (``BatchedServiceReader``) and wakes the deployments whose service changed
(``Agenda.wake_holders``, one round trip per look). A deployment waiting on ECS then runs when
something moved, not on a timer of its own; its own slow
poll stays as the safety net. Every host runs the loop; when the leader dies its lease
(``3 * interval``) lapses and another host takes over within ``4 * interval``. Deployments are woken
before the new fingerprints are stored, so a leader killed between the two leaves the change for its
successor to see (and wake) again rather than recorded and never acted on.

Keys (under ``deploy-agent:``)::

    watcher-leader                     the host id that watches now (PX lease)
    watch:<region>:<cluster>           hash: service -> fingerprint at the last look; after an
                                       UpdateService its mark (``core.watch.updated_mark``) until a
                                       look shows ECS's verdict
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import redis

from deploy_agent.adapters.agenda import News, WakeHolders
from deploy_agent.adapters.redis_store import PREFIX
from deploy_agent.adapters.service_reader import (
    FINGERPRINTS_TTL_SECONDS,
    WATCHED,
    BatchedServiceReader,
    fingerprints_key,
)
from deploy_agent.core.errors import DeployError
from deploy_agent.core.watch import UPDATED, UPDATING, decide_wake, fingerprint_service

log = logging.getLogger("deploy_agent.watcher")

LEADER = f"{PREFIX}watcher-leader"
#: a look that takes this many intervals is worth an operator's attention (at most once per
#: ``_SLOW_WARNING_SECONDS``): the quota or ECS's latency, not the interval, sets the pace
_SLOW_LOOK_INTERVALS = 2
_SLOW_WARNING_SECONDS = 600.0
#: DescribeServices calls of one look in flight at once: a look at 500 services is 50 calls, about
#: 100 ms each, so one after the other they took the look past its interval while ECS's read quota
#: (20 a second, a burst of 100) had room; the fleet's rate limiter still paces them
LOOK_CALLS_AT_ONCE = 4
_LEAD = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
#: KEYS[1] a cluster's fingerprints; ARGV: TTL (s), the marks' prefix, the update-on-its-way mark,
#: then service, what to keep, what the look read.
#: Replaced whole, in one step and one round trip, except the services an UpdateService marked
#: while the look ran (their mark differs from what the look read): the look may predate the update;
#: a service the look did not describe (it came in flight after the look began) keeps its mark.
_REMEMBER = """
local function marked(value) return value == ARGV[3] or string.sub(value, 1, #ARGV[2]) == ARGV[2] end
local current = {}
local flat = redis.call('hgetall', KEYS[1])
for i = 1, #flat, 2 do current[flat[i]] = flat[i + 1] end
local keep = {}
for i = 4, #ARGV, 3 do
  local now, value = current[ARGV[i]], ARGV[i + 1]
  if now and now ~= ARGV[i + 2] and marked(now) then value = now end
  keep[#keep + 1] = ARGV[i]
  keep[#keep + 1] = value
  current[ARGV[i]] = nil
end
for service, value in pairs(current) do
  if marked(value) then
    keep[#keep + 1] = service
    keep[#keep + 1] = value
  end
end
redis.call('del', KEYS[1])
if #keep > 0 then
  redis.call('hset', KEYS[1], unpack(keep))
  redis.call('expire', KEYS[1], ARGV[1])
end
return 1
"""


class ClusterWatcher:
    """Looks at every in-flight cluster each ``interval`` seconds (when this host leads) and wakes."""

    def __init__(
        self,
        client: redis.Redis,
        reader_for: Callable[[str], BatchedServiceReader],
        wake_holders: WakeHolders,
        interval: float,
        observe: Callable[[float, int], None] | None = None,
    ) -> None:
        self._r = client
        self._reader_for = reader_for
        self._wake_holders = wake_holders
        self.interval = interval
        self._observe = observe or (lambda _seconds, _services: None)
        self._warned_at: float | None = None
        self._calls = ThreadPoolExecutor(LOOK_CALLS_AT_ONCE, thread_name_prefix="deploy-agent-watcher-look")
        self._id = uuid.uuid4().hex
        self._lead = client.register_script(_LEAD)
        self._remember = client.register_script(_REMEMBER)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ClusterWatcher:
        self._thread = threading.Thread(target=self._loop, name="deploy-agent-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._calls.shutdown(wait=False, cancel_futures=True)

    def leads(self) -> bool:
        """Take or keep the leader's lease; return whether this host watches now."""
        ttl_ms = max(1000, int(self.interval * 3000))
        return bool(self._lead(keys=[LEADER], args=[self._id, ttl_ms]))

    def watch_once(self) -> int:
        """Look at every in-flight cluster once; return how many deployments were woken."""
        started = time.monotonic()
        woken = services = 0
        for raw in cast(set[bytes], self._r.smembers(WATCHED)):
            region, _, cluster = raw.decode().partition(":")
            try:
                described, woke = self._watch_cluster(region, cluster)
            except DeployError as exc:  # throttled or unreachable: the deployments' own polls go on
                log.warning("could not look at cluster %s/%s: %s", region, cluster, exc.message)
                continue
            woken += woke
            services += described
        if services:
            self._looked(time.monotonic() - started, services)
        return woken

    def _looked(self, seconds: float, services: int) -> None:
        """Report a look; warn when looks take so long that the interval no longer sets their pace."""
        self._observe(seconds, services)
        if seconds < _SLOW_LOOK_INTERVALS * self.interval:
            return
        now = time.monotonic()
        if self._warned_at is not None and now - self._warned_at < _SLOW_WARNING_SECONDS:
            return
        self._warned_at = now
        log.warning(
            "the cluster watcher's look at %d in-flight services took %.1f s (its interval is %.1f s): "
            "ECS's read quota and latency set its pace now (ten services per DescribeServices), and a "
            "deployment's verdict waits up to a look. ECS's events wake deployments without looking: "
            "`deploy-agent events setup`, then DEPLOY_AGENT_EVENTS_QUEUE_URL",
            services,
            seconds,
            self.interval,
        )

    def _watch_cluster(self, region: str, cluster: str) -> tuple[int, int]:
        """Look at one cluster; return how many services it described and deployments it woke."""
        described = self._reader_for(region).refresh(
            cluster, ttl_seconds=self.interval, map_calls=self._calls.map
        )
        key = fingerprints_key(region, cluster)
        # Read after the look: an UpdateService that ECS had applied when it was described has most
        # likely marked its service by now (the reader marks right after the reply).
        before = {k.decode(): v.decode() for k, v in cast(dict[bytes, bytes], self._r.hgetall(key)).items()}
        kept: list[str] = []
        news: list[News] = []
        for name, service in described.items():
            wake, keep = decide_wake(before.get(name), service, fingerprint_service(service))
            kept += [name, keep, before.get(name, "")]
            if wake is not None:
                news.append(News(region, cluster, name, about_tasks=wake))
        # One round trip for the look's wakes (one per moved service made them a look's most
        # commands at 500 in flight), before the fingerprints are stored (see the module note).
        woken = sum(1 for wake in self._wake_holders(news) if wake == "woken") if news else 0
        self._remember(keys=[key], args=[FINGERPRINTS_TTL_SECONDS, UPDATED, UPDATING, *kept])
        return len(described), woken

    def _loop(self) -> None:
        # A look every ``interval`` from the start of the one before, not ``interval`` after its end: a
        # look at a busy cluster takes a while (a DescribeServices per 10 services), and waiting the
        # whole interval after it left ECS's news that much longer unseen. After a look that took
        # longer than the interval, a quarter of it still passes, so the looks never take all of the
        # account's DescribeServices quota from the stages.
        due = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            started = time.monotonic()
            try:
                if self.leads():
                    self.watch_once()
            except redis.RedisError:
                log.warning("the cluster watcher cannot reach Redis; retrying", exc_info=True)
            except Exception:  # the watcher only saves latency: it must never die
                log.exception("the cluster watcher failed a look; retrying")
            due = max(started + self.interval, time.monotonic() + self.interval / 4)
