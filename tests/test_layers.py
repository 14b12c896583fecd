"""Imports flow one way: worker -> tasks -> strategies/adapters -> core (DESIGN section 8).

Only ``adapters/`` reaches the world: Redis, the Docker engine, AWS. The tasks, the strategies and
the core import none of their clients, and nothing below the worker imports the worker. The core
and the strategies import no tasks, worker or adapters either: they get what they need as
parameters (``core.ports``). The rule is read off each module's imports with ``ast``, including
imports inside functions and ``TYPE_CHECKING`` blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "deploy_agent"

#: the clients of the outside world: adapters/ alone imports them
CLIENTS = ("redis", "docker", "boto3", "botocore")
#: layer -> what it may not import (a module name or any of its submodules)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "tasks": (*CLIENTS, "deploy_agent.worker"),
    "strategies": (*CLIENTS, "deploy_agent.worker", "deploy_agent.tasks", "deploy_agent.adapters"),
    "core": (*CLIENTS, "deploy_agent.worker", "deploy_agent.tasks", "deploy_agent.adapters"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Return (line, absolute module name) of every import in the module at ``path``."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # ``from deploy_agent import worker`` names the module in the alias
            found += [(node.lineno, module)] + [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return found


def violations(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    """Return ``file:line: module`` for each import of ``path`` that ``forbidden`` rules out."""
    return sorted(
        {
            f"{path.relative_to(PACKAGE)}:{line}: {module}"
            for line, module in imported_modules(path)
            if any(module == name or module.startswith(name + ".") for name in forbidden)
        }
    )


def modules_of(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize(
    ("layer", "path"),
    [(layer, path) for layer in FORBIDDEN for path in modules_of(layer)],
    ids=lambda value: str(value.relative_to(PACKAGE)) if isinstance(value, Path) else value,
)
def test_a_layer_imports_nothing_it_may_not(layer: str, path: Path) -> None:
    """No module of tasks/, strategies/ or core/ imports a client of the world or a layer above it."""
    assert violations(path, FORBIDDEN[layer]) == []


class TestTheRuleItself:
    """The checker finds what it is meant to find (a checker that finds nothing proves nothing)."""

    def test_every_layer_has_modules(self) -> None:
        """The layers exist where the test looks for them."""
        assert all(modules_of(layer) for layer in FORBIDDEN)

    @pytest.mark.parametrize(
        ("source", "forbidden", "flagged"),
        [
            ("import redis\n", ("redis",), True),
            ("import redis.asyncio as r\n", ("redis",), True),
            ("from botocore.exceptions import ClientError\n", ("botocore",), True),
            ("def f():\n    import docker\n", ("docker",), True),
            ("from deploy_agent import worker\n", ("deploy_agent.worker",), True),
            ("from ..adapters import ecs\n", ("deploy_agent.adapters",), True),
            ("from ..adapters.ecs import EcsApi\n", ("deploy_agent.adapters",), True),
            ("from . import ports\n", ("deploy_agent.adapters",), False),
            ("import redistribute\n", ("redis",), False),
            ("from deploy_agent.workers import x\n", ("deploy_agent.worker",), False),
        ],
    )
    def test_it_finds_forbidden_imports_and_only_those(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        source: str,
        forbidden: tuple[str, ...],
        flagged: bool,
    ) -> None:
        """Absolute, dotted, nested and relative imports are caught, with their line; look-alikes are not."""
        monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path / "deploy_agent")
        module = tmp_path / "deploy_agent" / "core" / "probe.py"
        module.parent.mkdir(parents=True)
        module.write_text(source)
        found = violations(module, forbidden)
        assert bool(found) is flagged
        assert all(entry.startswith(f"core/probe.py:{source.count(chr(10))}: ") for entry in found)
