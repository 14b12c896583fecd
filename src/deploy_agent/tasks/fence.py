"""Fencing: a deployment acts on its service only while it holds the service's lock.

A worker killed mid-deployment leaves its stage to be redelivered, possibly long after its lock
expired and a newer deployment of the same service ran. Before each step and before each mutating
AWS call the pipeline checks, in the same Redis operation that extends the lock, that the lock is
still this deployment's (``ServiceLock.fence``); when it is not, ``LockLost`` stops the step.

The adapters a strategy gets are wrapped by ``fenced``: every method is fenced except the ones
named as reads, so a mutating method added later is fenced without anyone remembering to.

``adapters.redis_locks.StepMutex`` keeps two copies of one deployment's stage (a chain published
twice, a message redelivered while its first delivery still runs) from stepping at the same time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from deploy_agent.adapters.redis_locks import ServiceLock

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
