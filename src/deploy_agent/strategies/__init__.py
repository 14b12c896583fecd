"""Deployment strategies, one module each, registered by name (``strategy_for("rolling")``)."""

from deploy_agent.strategies import blue_green as _blue_green  # noqa: F401  (registers itself)
from deploy_agent.strategies import canary as _canary  # noqa: F401
from deploy_agent.strategies import rolling as _rolling  # noqa: F401
from deploy_agent.strategies.base import (
    Progress,
    Run,
    Strategy,
    register_strategy,
    strategy_for,
    strategy_names,
)

__all__ = ["Progress", "Run", "Strategy", "register_strategy", "strategy_for", "strategy_names"]
