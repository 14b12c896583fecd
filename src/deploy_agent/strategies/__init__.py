"""Deployment strategies, one module each, registered by name (``strategy_for("rolling")``).

Importing this package imports no strategy: ``strategies.registry`` finds them on first use.
"""

from deploy_agent.strategies.base import Memory, Ports, Progress, Run, Strategy, Tunables
from deploy_agent.strategies.registry import register, strategy_for, strategy_names

__all__ = [
    "Memory",
    "Ports",
    "Progress",
    "Run",
    "Strategy",
    "Tunables",
    "register",
    "strategy_for",
    "strategy_names",
]
