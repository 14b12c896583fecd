"""DescribeServices for many deployments at once: one call answers for up to 10 services.

Every deployment in flight is listed per cluster in Redis. When a stage needs its service, the
reader serves it from a snapshot younger than ``ttl`` seconds if there is one; otherwise it describes
the cluster's in-flight services in batches of 10 and stores the snapshot for the others. A write to
a service (UpdateService, CreateService, DeleteService) marks it, so a snapshot taken before the
write is never used after it.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

from deploy_agent.adapters.ecs import EcsApi
from deploy_agent.adapters.redis_store import PREFIX

BATCH = 10


class BatchedServiceReader:
    """The ``EcsPort`` the strategies use: batched, briefly cached reads; writes pass straight through."""

    def __init__(self, ecs: EcsApi, client: redis.Redis, region: str, ttl_seconds: float) -> None:
        self._ecs = ecs
        self._r = client
        self._region = region
        self._ttl_ms = max(1, int(ttl_seconds * 1000))

    # --- in-flight bookkeeping (called by the entry task and finish) ----------------------------
    def track(self, cluster: str, service: str) -> None:
        self._r.sadd(self._inflight(cluster), service)

    def untrack(self, cluster: str, service: str) -> None:
        self._r.srem(self._inflight(cluster), service)

    # --- reads ----------------------------------------------------------------------------------
    def describe_service(self, cluster: str, service: str) -> dict[str, Any]:
        cached = self._cached(cluster, service)
        if cached is not None:
            return cached
        others = [
            name.decode()
            for name in cast(list[bytes], self._r.smembers(self._inflight(cluster)))
            if name != service.encode()
        ]
        names = [service, *sorted(others)]
        taken = time.time()
        described: dict[str, dict[str, Any]] = {}
        for start in range(0, len(names), BATCH):
            described.update(self._ecs.describe_services(cluster, names[start : start + BATCH]))
        pipe = self._r.pipeline()
        for name, found in described.items():
            entry = json.dumps({"at": taken, "service": found}, default=str)
            pipe.set(self._snapshot(cluster, name), entry, px=self._ttl_ms)
        pipe.execute()
        if service not in described or described[service].get("status") == "INACTIVE":
            return self._ecs.describe_service(cluster, service)  # raises the proper AwsNotFound
        return described[service]

    def _cached(self, cluster: str, service: str) -> dict[str, Any] | None:
        raw, written = cast(
            list[bytes | None],
            self._r.mget(self._snapshot(cluster, service), self._written(cluster, service)),
        )
        if raw is None:
            return None
        entry = json.loads(raw)
        if written is not None and float(written) >= float(entry["at"]):
            return None  # taken before our own last write to this service
        found = cast(dict[str, Any], entry["service"])
        return None if found.get("status") == "INACTIVE" else found

    # --- writes: pass through, and mark the service so older snapshots are ignored ---------------
    def update_service(self, cluster: str, service: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._mark_written(cluster, service)
        result = self._ecs.update_service(cluster, service, *args, **kwargs)
        self._mark_written(cluster, service)
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
        return self._ecs.create_service(
            cluster, template, name, task_definition_arn, target_group_arn, desired_count
        )

    def delete_service(self, cluster: str, service: str) -> None:
        self._mark_written(cluster, service)
        self._ecs.delete_service(cluster, service)
        self._mark_written(cluster, service)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ecs, name)  # every other call is the adapter's own

    # --- keys -------------------------------------------------------------------------------------
    def _mark_written(self, cluster: str, service: str) -> None:
        self._r.set(self._written(cluster, service), repr(time.time()), ex=3600)

    def _inflight(self, cluster: str) -> str:
        return f"{PREFIX}inflight:{self._region}:{cluster}"

    def _snapshot(self, cluster: str, service: str) -> str:
        return f"{PREFIX}svc:{self._region}:{cluster}/{service}"

    def _written(self, cluster: str, service: str) -> str:
        return f"{PREFIX}written:{self._region}:{cluster}/{service}"
