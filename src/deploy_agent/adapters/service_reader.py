"""DescribeServices for many deployments at once: one call answers for up to 10 services.

Every deployment in flight is listed per cluster in Redis. When a stage needs its service, the
reader serves it from a snapshot if there is a usable one; otherwise one DescribeServices call
describes it with up to nine other in-flight services of the cluster, picked at random, and stores
their snapshots for them (``others``). Where the cluster watcher or ECS's events wake the stages, a
stage's own look describes its service alone: the others' snapshots (a fast poll's quarter second)
served almost none of them there, and ten descriptions cost ECS and the worker ten times the reply.
Only the cluster watcher describes every in-flight service (``refresh``): a stage that swept 500
services (50 calls) would spend a DescribeServices quota of 20 a second on one look.

Freshness never compares clocks of different hosts. Each service has a write generation, a Redis
counter that every write (UpdateService, CreateService, DeleteService) increments before its call
and again after it. A snapshot records the generation read before its DescribeServices, and is
used only while the counter still holds that value: a write that started before, ran during or
ended after the describe has moved it. Snapshots expire through Redis (``PX``), on Redis's clock.

Keys (under ``deploy-agent:``)::

    inflight:<region>:<cluster>        set of the services with a deployment in flight
    inflight-clusters                  set of "<region>:<cluster>" with a deployment in flight
    svc:<region>:<cluster>/<svc>       JSON {"generation": n, "service": DescribeServices entry}
    svc-gen:<region>:<cluster>/<svc>   the service's write generation (missing reads as 0)
    watch:<region>:<cluster>           the cluster watcher's fingerprints (``worker.cluster_watch``);
                                       an UpdateService marks its service's (``UPDATING``, then
                                       ``updated_mark``)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import redis

from deploy_agent.adapters.ecs import EcsApi
from deploy_agent.adapters.redis_store import PREFIX
from deploy_agent.core.rollout import primary_deployment
from deploy_agent.core.watch import UPDATING, updated_mark

BATCH = 10
#: runs one function over many inputs and yields the results in order (``Executor.map``)
MapCalls = Callable[
    [Callable[[list[str]], dict[str, dict[str, Any]]], Iterable[list[str]]],
    Iterator[dict[str, dict[str, Any]]],
]
#: "<region>:<cluster>" of every cluster with a deployment in flight (the cluster watcher's list)
WATCHED = f"{PREFIX}inflight-clusters"
#: how long a generation is kept after the last write: far beyond any snapshot's TTL, so a
#: counter that lapsed and restarted cannot come back to a value a live snapshot recorded
GENERATION_TTL_SECONDS = 24 * 3600
_FINGERPRINTS = f"{PREFIX}watch:"
#: how long a cluster's fingerprints outlive the watcher's last look
FINGERPRINTS_TTL_SECONDS = 3600

#: KEYS[1] the cluster's in-flight set; ARGV[1] the generation key prefix, ARGV[2] the service
#: asked for, ARGV[3] how many others (0: all). Returns name, generation, name, generation, ... for
#: that service and the others in flight (a random few), read in one step so no write falls
#: between the names and their generations; one MGET per 500 (a GET each made a sweep of 500
#: in-flight services 500 commands, a third of a fleet's Redis traffic).
_GENERATIONS = """
local names = {ARGV[2]}
local others
if tonumber(ARGV[3]) > 0 then
  others = redis.call('srandmember', KEYS[1], tonumber(ARGV[3]) + 1)
else
  others = redis.call('smembers', KEYS[1])
end
for _, name in ipairs(others) do
  if name ~= ARGV[2] then names[#names + 1] = name end
end
local out = {}
for start = 1, #names, 500 do
  local keys = {}
  for i = start, math.min(start + 499, #names) do keys[#keys + 1] = ARGV[1] .. names[i] end
  local values = redis.call('mget', unpack(keys))
  for i, value in ipairs(values) do
    out[#out + 1] = names[start + i - 1]
    out[#out + 1] = value or '0'
  end
end
return out
"""


#: KEYS[1] a cluster's in-flight set, KEYS[2] the watched clusters; ARGV[1] "<region>:<cluster>",
#: ARGV[2] the service. In one step, so the watcher never sees the cluster gone with a service in it.
_TRACK = """
redis.call('sadd', KEYS[1], ARGV[2])
return redis.call('sadd', KEYS[2], ARGV[1])
"""

#: as ``_TRACK``; the cluster leaves the watched set only while nothing of it is in flight; KEYS[3]
#: the service's snapshot, dropped: the next deployment of the service starts from a look of its own
_UNTRACK = """
redis.call('srem', KEYS[1], ARGV[2])
redis.call('del', KEYS[3])
if redis.call('scard', KEYS[1]) == 0 then return redis.call('srem', KEYS[2], ARGV[1]) end
return 0
"""

#: KEYS: snapshot keys; ARGV[1] their TTL (ms), then one JSON entry per key. One round trip for a
#: look at a whole cluster (a SET per service made the watcher's looks most of a fleet's commands).
_STORE = """
for i, key in ipairs(KEYS) do redis.call('set', key, ARGV[i + 1], 'PX', ARGV[1]) end
return #KEYS
"""

#: KEYS[1] a service's write generation; ARGV[1] its TTL (s)
_MARK_WRITTEN = """
local generation = redis.call('incr', KEYS[1])
redis.call('expire', KEYS[1], ARGV[1])
return generation
"""

#: as ``_MARK_WRITTEN``; KEYS[2] the cluster's fingerprints, ARGV[2] the service, ARGV[3] its
#: fingerprint from now ('': none), ARGV[4] the fingerprints' TTL (s)
_MARK_UPDATED = (
    _MARK_WRITTEN.replace("return generation", "")
    + """if ARGV[3] == '' then redis.call('hdel', KEYS[2], ARGV[2]) return generation end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
redis.call('expire', KEYS[2], ARGV[4])
return generation
"""
)


def fingerprints_key(region: str, cluster: str) -> str:
    """Return the key of the cluster watcher's fingerprints (and the updates' marks) of a cluster."""
    return f"{_FINGERPRINTS}{region}:{cluster}"


class BatchedServiceReader:
    """The ``EcsPort`` the strategies use: batched, briefly cached reads; writes pass straight through."""

    def __init__(
        self, ecs: EcsApi, client: redis.Redis, region: str, ttl_seconds: float, others: int = BATCH - 1
    ) -> None:
        self._ecs = ecs
        self._others = max(0, min(BATCH - 1, others))
        self._r = client
        self._region = region
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._track = client.register_script(_TRACK)
        self._untrack = client.register_script(_UNTRACK)
        self._store = client.register_script(_STORE)
        self._mark = client.register_script(_MARK_WRITTEN)
        self._mark_updated = client.register_script(_MARK_UPDATED)

    # --- in-flight bookkeeping (called by the entry task and finish) ----------------------------
    def track(self, cluster: str, service: str) -> None:
        self._track(keys=[self._inflight(cluster), WATCHED], args=[f"{self._region}:{cluster}", service])

    def untrack(self, cluster: str, service: str) -> None:
        self._untrack(
            keys=[self._inflight(cluster), WATCHED, self._snapshot(cluster, service)],
            args=[f"{self._region}:{cluster}", service],
        )

    def in_flight(self, cluster: str) -> list[str]:
        """Return the services of ``cluster`` with a deployment in flight."""
        return sorted(m.decode() for m in cast(set[bytes], self._r.smembers(self._inflight(cluster))))

    def refresh(
        self, cluster: str, ttl_seconds: float | None = None, map_calls: MapCalls = map
    ) -> dict[str, dict[str, Any]]:
        """Describe every in-flight service of ``cluster`` (10 per call), store the snapshots; return them.

        ``ttl_seconds`` (default: the reader's) is how long the snapshots serve: the cluster watcher's
        last until its next look, so the stages it wakes read the look that woke them instead of
        describing their service again (with a fast poll's quarter second, most woken stages of a
        busy host came after it and spent a DescribeServices each). ``map_calls`` runs the calls (a
        thread pool's ``map`` runs them side by side; the fleet's quota still paces them).
        """
        names = self.in_flight(cluster)
        if not names:
            return {}
        ttl_ms = self._ttl_ms if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        return self._describe_batch(
            cluster, self._generations(cluster, names[0]), ttl_ms=ttl_ms, map_calls=map_calls
        )

    # --- reads ----------------------------------------------------------------------------------
    def describe_service(self, cluster: str, service: str) -> dict[str, Any]:
        cached = self._cached(cluster, service)
        if cached is not None:
            return cached
        # Before the describe (see the module note); nine others at most, as one call describes ten.
        if self._others:
            generations = self._generations(cluster, service, others=self._others)
        else:  # only this one: one GET, not the script that picks others
            raw = cast(bytes | None, self._r.get(self._generation(cluster, service)))
            generations = {service: int(raw or 0)}
        others = [name for name in generations if name != service][: self._others]
        batch = {name: generations[name] for name in (service, *others)}
        described = self._describe_batch(cluster, batch, first=service)
        if service not in described or described[service].get("status") == "INACTIVE":
            return self._ecs.describe_service(cluster, service)  # raises the proper AwsNotFound
        return described[service]

    def _describe_batch(
        self,
        cluster: str,
        generations: dict[str, int],
        first: str | None = None,
        ttl_ms: int | None = None,
        map_calls: MapCalls = map,
    ) -> dict[str, dict[str, Any]]:
        """Describe the services of ``generations`` in batches of 10 and store their snapshots."""
        names = [*([first] if first else []), *sorted(name for name in generations if name != first)]
        batches = [names[start : start + BATCH] for start in range(0, len(names), BATCH)]
        described: dict[str, dict[str, Any]] = {}
        for found in map_calls(lambda batch: self._ecs.describe_services(cluster, batch), batches):
            described.update(found)
        if described:
            keys = [self._snapshot(cluster, name) for name in described]
            entries = [
                json.dumps({"generation": generations[name], "service": found}, default=str)
                for name, found in described.items()
            ]
            self._store(keys=keys, args=[ttl_ms or self._ttl_ms, *entries])
        return described

    def _cached(self, cluster: str, service: str) -> dict[str, Any] | None:
        raw, generation = cast(
            list[bytes | None],
            self._r.mget(self._snapshot(cluster, service), self._generation(cluster, service)),
        )
        if raw is None:
            return None
        entry = json.loads(raw)
        if entry.get("generation") != int(generation or 0):
            return None  # a write to this service began or ended since the snapshot's describe
        found = cast(dict[str, Any], entry["service"])
        return None if found.get("status") == "INACTIVE" else found

    def _generations(self, cluster: str, service: str, others: int = 0) -> dict[str, int]:
        """Return the write generation of ``service`` and of ``others`` random services in flight (0: all)."""
        prefix = self._generation(cluster, "")
        raw = cast(
            list[bytes], self._r.eval(_GENERATIONS, 1, self._inflight(cluster), prefix, service, str(others))
        )
        return {raw[i].decode(): int(raw[i + 1]) for i in range(0, len(raw), 2)}

    # --- writes: pass through, and move the generation so older snapshots are refused -----------
    def update_service(self, cluster: str, service: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # With the generation, in the same round trips: the service's watch fingerprint reads
        # "updating" until the reply, then carries the deployment the update started, so neither the
        # watcher's looks nor ECS's events wake the stage for what the update made itself
        # (``core.watch.is_verdict_news``): its new deployment woke the stage that had just made it.
        self._mark_fingerprint(cluster, service, UPDATING)
        try:
            result = self._ecs.update_service(cluster, service, *args, **kwargs)
        except BaseException:
            self._mark_fingerprint(cluster, service, "")  # no update: the next look learns afresh
            raise
        ours = str((primary_deployment(result) or {}).get("id") or "")
        self._mark_fingerprint(cluster, service, updated_mark(ours))
        return result

    def create_service(
        self,
        cluster: str,
        template: dict[str, Any],
        name: str,
        task_definition_arn: str,
        target_group_arn: str,
        desired_count: int,
    ) -> dict[str, Any]:
        self._mark_written(cluster, name)
        created = self._ecs.create_service(
            cluster, template, name, task_definition_arn, target_group_arn, desired_count
        )
        self._mark_written(cluster, name)
        return created

    def delete_service(self, cluster: str, service: str) -> None:
        self._mark_written(cluster, service)
        self._ecs.delete_service(cluster, service)
        self._mark_written(cluster, service)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ecs, name)  # every other call is the adapter's own

    # --- keys -------------------------------------------------------------------------------------
    def _mark_fingerprint(self, cluster: str, service: str, mark: str) -> None:
        """Move the service's write generation and set its watch fingerprint to ``mark`` ("": drop it)."""
        self._mark_updated(
            keys=[self._generation(cluster, service), fingerprints_key(self._region, cluster)],
            args=[GENERATION_TTL_SECONDS, service, mark, FINGERPRINTS_TTL_SECONDS],
        )

    def _mark_written(self, cluster: str, service: str) -> None:
        self._mark(keys=[self._generation(cluster, service)], args=[GENERATION_TTL_SECONDS])

    def _inflight(self, cluster: str) -> str:
        return f"{PREFIX}inflight:{self._region}:{cluster}"

    def _snapshot(self, cluster: str, service: str) -> str:
        return f"{PREFIX}svc:{self._region}:{cluster}/{service}"

    def _generation(self, cluster: str, service: str) -> str:
        return f"{PREFIX}svc-gen:{self._region}:{cluster}/{service}"
