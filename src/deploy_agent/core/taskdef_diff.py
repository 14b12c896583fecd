"""The dry-run plan's task definition diff: what a new revision changes, path by path. Pure.

Used by ``deploy-agent plan`` (``tasks/plan.py``) to show the revision a deployment would register.
Values of ``environment`` and ``secrets`` are never shown: only their names, and ``(value changed)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from deploy_agent.core.taskdef import REGISTER_FIELDS

#: name-keyed lists whose values may be sensitive: their entries are shown by name only
HIDDEN_LISTS = frozenset({"environment", "secrets"})
#: fields left out of the diff: tags are metadata of the registration, not of what runs
NOT_DIFFED = frozenset({"tags"})
#: longest rendering of one value in the diff
MAX_VALUE_CHARS = 120


def _redact(value: Any) -> Any:
    """Return ``value`` with the values of every environment and secrets entry replaced."""
    if isinstance(value, dict):
        return {k: (_names_only(v) if k in HIDDEN_LISTS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _names_only(entries: Any) -> Any:
    if not isinstance(entries, list):
        return "(hidden)"
    return [
        {"name": e["name"], "value": "(hidden)"} if isinstance(e, dict) and "name" in e else "(hidden)"
        for e in entries
    ]


def _render(value: Any) -> str:
    value = _redact(value)
    if value is None:
        return "(none)"
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _empty(value: Any) -> bool:
    # an absent field and an empty one mean the same to ECS
    return value is None or value == [] or value == {}


def _by_name(items: Any) -> dict[str, Any] | None:
    """Return a name-keyed view of a list of named dicts, or None when it is not one."""
    if not isinstance(items, list) or not items:
        return None
    if not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    named = {str(i["name"]): i for i in items}
    return named if len(named) == len(items) else None


def _diff(path: str, old: Any, new: Any, hidden: bool, out: list[str]) -> None:
    if old == new or (_empty(old) and _empty(new)):
        return
    hidden = hidden or path.rsplit(".", 1)[-1] in HIDDEN_LISTS
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            _diff(f"{path}.{key}" if path else key, old.get(key), new.get(key), hidden, out)
        return
    if isinstance(old, list) or isinstance(new, list):
        before, after = _by_name(old or []), _by_name(new or [])
        if (before is not None or _empty(old)) and (after is not None or _empty(new)):
            before, after = before or {}, after or {}
            for name in after:
                if name not in before:
                    out.append(f"{path}[{name}] added" + ("" if hidden else f": {_render(after[name])}"))
            for name in before:
                if name not in after:
                    out.append(f"{path}[{name}] removed")
            for name in before:
                if name in after and before[name] != after[name]:
                    if hidden:
                        out.append(f"{path}[{name}]: (value changed)")
                    else:
                        entry_old = {k: v for k, v in before[name].items() if k != "name"}
                        entry_new = {k: v for k, v in after[name].items() if k != "name"}
                        _diff(f"{path}[{name}]", entry_old, entry_new, False, out)
            return
    if hidden:
        out.append(f"{path}: (value changed)")
    elif _empty(old):
        out.append(f"{path}: added {_render(new)}")
    elif _empty(new):
        out.append(f"{path}: removed (was {_render(old)})")
    else:
        out.append(f"{path}: {_render(old)} -> {_render(new)}")


def diff_task_definition(current: Mapping[str, Any] | None, planned: Mapping[str, Any]) -> list[str]:
    """Return the changes from ``current`` to ``planned``, one ``path: old -> new`` line each.

    Only ``RegisterTaskDefinition`` fields are compared (not ``tags``); containers and other
    name-keyed lists are matched by name, e.g. ``containerDefinitions[web].image: repo:1 -> repo:2``,
    ``cpu: 256 -> 512``, ``containerDefinitions[web].environment[MODE]: (value changed)``. With no
    ``current`` (a service without one is not deployable; tests only) every planned field is added.
    """
    out: list[str] = []
    before = current or {}
    for key in REGISTER_FIELDS:
        if key in NOT_DIFFED:
            continue
        _diff(key, before.get(key), planned.get(key), False, out)
    return out
