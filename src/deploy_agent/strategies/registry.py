"""The strategies, by name: every module of this package that registers one, found without a list.

A strategy module ends with ``register(TheStrategy)``. Everything that depends on the set of
strategies derives from here: the message's ``strategy`` union and its JSON Schema
(``models.request``), the stage tasks and chain planning (``tasks``), and the metric labels.
Adding a strategy is adding a module; nothing else names it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, TypeVar

from pydantic import BaseModel

from deploy_agent.core.outcome import Trigger
from deploy_agent.strategies.base import Strategy

#: the pipeline's stages in chain order; a strategy's ``stages`` is a subsequence of these
PIPELINE_ORDER = ("preflight", "build", "push", "register", "deploy", "healthcheck", "rollback", "finalize")
#: the strategy a message without ``strategy`` gets
DEFAULT = "rolling"
#: modules of this package that are not strategies
_NOT_STRATEGIES = frozenset({"base", "registry"})

_REGISTRY: dict[str, Strategy[Any]] = {}
_discovered = False

#: mypy checks every registered class against the ``Strategy`` Protocol
S = TypeVar("S", bound=Strategy[Any])


def register(cls: type[S]) -> type[S]:
    """Make a strategy class available under its ``name`` (usable as a class decorator)."""
    strategy = cls()
    _check(strategy)
    _REGISTRY[strategy.name] = strategy
    return cls


def _check(strategy: Strategy[Any]) -> None:
    unknown = [s for s in strategy.stages if s not in PIPELINE_ORDER]
    if unknown:
        raise ValueError(f"strategy {strategy.name!r} names unknown stages {unknown}")
    type_field = strategy.options.model_fields.get("type")
    if type_field is None or type_field.default != strategy.name:
        raise ValueError(f"strategy {strategy.name!r}: its options need type = {strategy.name!r}")


def discover() -> None:
    """Import every strategy module of this package once (each registers itself)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import deploy_agent.strategies as package

    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.ispkg or module.name.startswith("_") or module.name in _NOT_STRATEGIES:
            continue
        importlib.import_module(f"{package.__name__}.{module.name}")


def strategy_for(name: str) -> Strategy[Any]:
    """Return the strategy registered as ``name``."""
    discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown strategy {name!r} (known: {known})") from None


def strategy_names() -> list[str]:
    discover()
    return sorted(_REGISTRY)


def options_models() -> tuple[type[BaseModel], ...]:
    """Return each strategy's options model, the default strategy's first (the schema's order)."""
    discover()
    names = sorted(_REGISTRY, key=lambda n: (n != DEFAULT, n))
    return tuple(_REGISTRY[n].options for n in names)


def all_stages() -> tuple[str, ...]:
    """Return every stage some strategy runs, in chain order."""
    discover()
    used = {s for strategy in _REGISTRY.values() for s in strategy.stages}
    return tuple(s for s in PIPELINE_ORDER if s in used)


def all_triggers() -> tuple[str, ...]:
    """Return every rollback trigger some strategy can report, plus the manual rollback's."""
    discover()
    found = {str(t) for strategy in _REGISTRY.values() for t in strategy.triggers} | {str(Trigger.MANUAL)}
    return tuple(str(t) for t in Trigger if str(t) in found)
