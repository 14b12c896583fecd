"""The emulation and the product know nothing of each other (issue 11.6), read off their imports with ``ast``.

``ecs_sandbox`` (the emulated AWS) imports no ``deploy_agent`` and no ``sandbox_harness``;
``deploy_agent`` imports no ``ecs_sandbox``, ``sandbox_harness`` or ``moto``, except lazily inside
``cli._cmd_sandbox`` (the ``deploy-agent sandbox`` command of a source checkout). Every import
counts: at module level, inside functions, under ``TYPE_CHECKING``. The wheel ships ``deploy_agent``
alone.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

#: the one function of deploy_agent that may reach the sandbox, imported when the command runs
LAZY_DOOR = ("cli.py", "_cmd_sandbox")


def imports_of(source: str, package: str) -> list[tuple[int, str, str | None]]:
    """Return (line, absolute module, enclosing top-level function or None) of every import in ``source``."""
    found: list[tuple[int, str, str | None]] = []
    for statement in ast.parse(source).body:
        function = statement.name if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) else None
        for node in ast.walk(statement):
            if isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name, function) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
                found.append((node.lineno, module or "", function))
    return found


def is_within(module: str, names: tuple[str, ...]) -> bool:
    """Return whether ``module`` is one of ``names`` or a submodule of one."""
    return any(module == name or module.startswith(name + ".") for name in names)


def offending_imports(package: str, forbidden: tuple[str, ...]) -> list[str]:
    """Return ``file:line: module`` for each import of ``package`` that ``forbidden`` rules out."""
    root = SRC / package
    bad: list[str] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        module_package = ".".join((package, *relative.parts[:-1]))
        for line, module, function in imports_of(path.read_text(), module_package):
            if not is_within(module, forbidden):
                continue
            if (relative.as_posix(), function) == LAZY_DOOR:
                continue
            bad.append(f"{package}/{relative}:{line}: {module}")
    return bad


class TestTheRuleItself:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            pytest.param("import deploy_agent\n", [(1, "deploy_agent", None)], id="a plain import"),
            pytest.param(
                "from deploy_agent.cli import main\n", [(1, "deploy_agent.cli", None)], id="a from-import"
            ),
            pytest.param(
                "def f():\n    from moto import mock_aws\n",
                [(2, "moto", "f")],
                id="an import inside a function names the function",
            ),
            pytest.param(
                "class C:\n    def m(self):\n        import moto\n",
                [(3, "moto", None)],
                id="a method is not a top-level function",
            ),
            pytest.param(
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ecs_sandbox\n",
                [(1, "typing", None), (3, "ecs_sandbox", None)],
                id="TYPE_CHECKING imports count",
            ),
            pytest.param(
                "from ..adapters import ecs\n", [(1, "deploy_agent.adapters", None)], id="a relative import"
            ),
            pytest.param("from . import realism\n", [(1, "deploy_agent.sandbox", None)], id="from . import"),
        ],
    )
    def test_imports_are_found_with_their_function(
        self, source: str, expected: list[tuple[int, str, str | None]]
    ) -> None:
        """Every import is found, made absolute and placed in its top-level function."""
        assert imports_of(source, "deploy_agent.sandbox") == expected

    @pytest.mark.parametrize(
        ("module", "within"),
        [("deploy_agent", True), ("deploy_agent.cli", True), ("deploy_agents", False), ("moto_x", False)],
    )
    def test_a_package_covers_its_submodules_only(self, module: str, within: bool) -> None:
        """A forbidden name rules out the package and its submodules, not look-alike names."""
        assert is_within(module, ("deploy_agent", "moto")) is within


class TestIsolation:
    def test_the_emulation_imports_no_deploy_agent(self) -> None:
        """No module of ecs_sandbox imports deploy_agent or the harness, not even lazily."""
        assert offending_imports("ecs_sandbox", ("deploy_agent", "sandbox_harness")) == []

    def test_deploy_agent_imports_no_sandbox_and_no_moto(self) -> None:
        """deploy_agent imports neither the emulation, the harness nor moto, but in cli._cmd_sandbox."""
        assert offending_imports("deploy_agent", ("ecs_sandbox", "sandbox_harness", "moto")) == []

    def test_the_lazy_door_is_the_sandbox_command(self) -> None:
        """cli._cmd_sandbox is where the sandbox is reached from: the exemption is not a dead letter."""
        found = imports_of((SRC / "deploy_agent" / "cli.py").read_text(), "deploy_agent")
        assert any(
            f == LAZY_DOOR[1] and is_within(m, ("sandbox_harness", "ecs_sandbox")) for _, m, f in found
        )

    def test_the_wheel_ships_deploy_agent_only(self) -> None:
        """setuptools finds deploy_agent alone: the emulation and the harness stay in the checkout."""
        config = tomllib.loads((ROOT / "pyproject.toml").read_text())
        assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["deploy_agent*"]
