"""Fencing: a deployment acts on its service only while it holds the service's lock.

A worker killed mid-deployment leaves its stage to be redelivered, possibly long after its lock
expired and a newer deployment of the same service ran. Before each step and before each mutating
AWS call the pipeline checks, in the same Redis operation that extends the lock, that the lock is
still this deployment's (``ServiceLock.fence``); when it is not, ``LockLost`` stops the step.

The adapters a strategy gets are wrapped by ``fenced``: every method is fenced except the ones
named as reads, so a mutating method added later is fenced without anyone remembering to.

``StepMutex`` keeps two copies of one deployment's stage (a chain published twice, a message
redelivered while its first delivery still runs) from stepping at the same time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis

from deploy_agent.tasks.store import PREFIX, ServiceLock

T = TypeVar("T")

#: adapter methods that only read: they skip the fence (one Redis call saved per look at AWS)
READ_PREFIXES = ("describe", "list", "get", "track", "untrack")
READS = frozenset(
    {"forward_weights", "target_group_attributes", "alarms_in_alarm", "missing_alarms", "authorization"}
)

#: the reason a deployment that lost its lock ends with (outcome ``superseded``)
LOCK_LOST = "superseded"


class LockLost(Exception):
    """This deployment no longer holds its service's lock: it must not act on the service again.

    Deliberately not a ``DeployError``: nothing may catch it as an AWS failure and retry or undo.
    """

    def __init__(self, cluster: str, service: str, holder: str | None) -> None:
        self.holder = holder
        now = f"deployment {holder} holds it now" if holder else "another deployment held it since"
        self.message = (
            f"lost the lock of service {cluster}/{service} ({now}); "
            "stopped without touching the service again"
        )
        super().__init__(self.message)


def fence_for(lock: ServiceLock, cluster: str, service: str, token: str) -> Callable[[], None]:
    """Return a callable that extends ``token``'s lock or raises ``LockLost``."""

    def fence() -> None:
        if not lock.fence(token):
            raise LockLost(cluster, service, lock.holder())

    return fence


def is_read(name: str) -> bool:
    """Return whether an adapter method of this name only reads."""
    return name.startswith(READ_PREFIXES) or name in READS


class _Fenced:
    """A proxy that calls the fence before every non-read method of the adapter it wraps."""

    def __init__(self, adapter: Any, fence: Callable[[], None]) -> None:
        self._adapter = adapter
        self._fence = fence

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._adapter, name)
        if name.startswith("_") or not callable(attribute) or is_read(name):
            return attribute
        fence = self._fence

        def checked(*args: Any, **kwargs: Any) -> Any:
            fence()
            return attribute(*args, **kwargs)

        return checked

    def __repr__(self) -> str:
        return f"fenced({self._adapter!r})"


def fenced(adapter: T, fence: Callable[[], None]) -> T:
    """Return ``adapter`` with the fence checked right before each of its mutating calls."""
    if adapter is None:
        return adapter
    return _Fenced(adapter, fence)  # type: ignore[return-value]


class StepMutex:
    """One step of a deployment at a time, across processes: a Redis key with a random owner."""

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, client: redis.Redis, deployment_id: str, ttl_seconds: float) -> None:
        self._r = client
        self.key = f"{PREFIX}stepping:{deployment_id}"
        # A step never outlives the task time limit; a killed one frees the key within it, and
        # a redelivery comes only after the visibility timeout, which is above that limit.
        self._ttl_ms = max(1000, int(ttl_seconds * 1000))

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
