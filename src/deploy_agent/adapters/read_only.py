"""Adapters that answer reads and refuse every other call: how a dry-run plan cannot change AWS."""

from __future__ import annotations

from typing import Any

#: adapter methods that only read (every other attribute of a wrapped adapter raises)
READ_PREFIXES = ("describe_", "list_", "get_")
READ_METHODS = frozenset(
    {"missing_alarms", "alarms_in_alarm", "log_group_exists", "target_group_attributes", "forward_weights"}
)


class MutationRefused(RuntimeError):
    """A plan tried to change something on AWS: a bug, never an outcome."""


class ReadOnly:
    """An adapter that answers reads and refuses everything else, so a plan cannot change AWS."""

    def __init__(self, adapter: Any, name: str) -> None:
        self._adapter = adapter
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith(READ_PREFIXES) or attr in READ_METHODS:
            return getattr(self._adapter, attr)
        raise MutationRefused(f"a plan makes no changes: {self._name}.{attr} refused")
