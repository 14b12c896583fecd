"""Which tests need the real parts, enforced at collection; only those are rerun on failure.

A test needs the real parts (Redis, the Docker engine, the registry, the moto server) when

- it uses a fixture that starts one (``ROOT_FIXTURES``), directly or through other fixtures; or
- its module holds Docker or moto (the packages or anything from them), or one of the sandbox's
  launchers (``LAUNCHERS``: a sandbox, a Redis server, a moto server, a worker process).

Such a test must be marked ``integration``; one that is not is a collection error naming the test
and what it uses. Every ``integration`` test is retried once on failure (pytest-rerunfailures'
``flaky`` marker), and the session ends with a ``rerun:`` line counting and naming the retried
tests. A unit test is never retried: one carrying ``flaky`` itself is a collection error too.

Plain names only at import: this module is loaded by tests/conftest.py for every run, unit
runs included, so it must not import Docker, moto or the sandbox.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent

#: fixtures that start (or connect to) a real part, by the file that defines them (relative to tests/)
ROOT_FIXTURES = {
    ("conftest.py", "session_sandbox"),
    ("conftest.py", "docker_client"),
    ("adapters/conftest.py", "docker_api"),
    ("adapters/conftest.py", "registry"),
    ("integration/conftest.py", "docker_api"),
    ("integration/conftest.py", "sandbox"),  # flushes Redis DBs 13-15
}
#: packages whose mere presence in a test module means the test talks to a real part
REAL_PACKAGES = ("docker", "moto")
#: the sandbox packages, and those of their classes that start a real part
SANDBOX_PACKAGES = ("ecs_sandbox", "sandbox_harness")
LAUNCHERS = ("Sandbox", "LocalRedis", "MotoServer", "WorkerProcess", "PrometheusServer")

RERUN = pytest.mark.flaky(reruns=1, reruns_delay=2)


@pytest.hookimpl(tryfirst=True)  # before -m deselects: a run of unit tests checks the others too
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems = []
    for item in items:
        marked = item.get_closest_marker("integration") is not None
        uses = real_parts_used(item)
        if uses and not marked:
            problems.append(f"{item.nodeid} uses {uses[0]} but is not marked integration")
        elif marked and item.get_closest_marker("flaky") is None:
            item.add_marker(RERUN)
        elif not marked and item.get_closest_marker("flaky") is not None:
            problems.append(f"{item.nodeid} is marked flaky: only integration tests are rerun")
    if problems:
        raise pytest.UsageError(
            "tests needing the real parts must be marked integration "
            "(pytestmark = pytest.mark.integration):\n  " + "\n  ".join(problems)
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reports = terminalreporter.stats.get("rerun", [])
    rerun = sorted({report.nodeid for report in reports})
    if not rerun:
        terminalreporter.write_line("rerun: 0")
        return
    terminalreporter.write_line(f"rerun: {len(rerun)} test(s) needing the real parts: {', '.join(rerun)}")
    # A rerun that passed leaves no trace in the failures section: say what its first try died of,
    # so a flaky test can be found from a CI log's tail.
    for report in reports:
        why = first_failure(report)
        terminalreporter.write_line(f"  first try of {report.nodeid} ({report.when}): {why}")


def first_failure(report: pytest.TestReport) -> str:
    """Return the one line that says why a test report failed (its crash message, else its last line)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    lines = report.longreprtext.strip().splitlines()
    text = str(getattr(crash, "message", "") or (lines[-1] if lines else "no report"))
    line = " ".join(text.split())
    return line if len(line) <= 400 else line[:400] + " ..."


def real_parts_used(item: pytest.Item) -> list[str]:
    """Return what makes ``item`` need the real parts (fixture chains, module names); empty if nothing."""
    info = getattr(item, "_fixtureinfo", None)
    chains = [] if info is None else list(_root_chains(info.name2fixturedefs, info.initialnames))
    module = getattr(item, "module", None)
    held = [] if module is None else [f"{name} (imported by its module)" for name in _real_names(module)]
    return [" -> ".join(chain) + " (fixture)" for chain in chains] + held


def _root_chains(
    name2defs: dict[str, tuple[pytest.FixtureDef[object], ...]], requested: tuple[str, ...]
) -> Iterator[list[str]]:
    """Yield each fixture path from a requested fixture down to a root fixture (depth first)."""
    seen: set[tuple[str, int]] = set()

    def walk(name: str, depth: int, path: list[str]) -> Iterator[list[str]]:
        defs = name2defs.get(name, ())
        if depth >= len(defs) or (name, depth) in seen:
            return
        seen.add((name, depth))
        fixture = defs[-1 - depth]  # the closest definition; a fixture asking for its own name gets the next
        if _defined_in(fixture) in ROOT_FIXTURES:
            yield [*path, name]
            return
        for arg in fixture.argnames:
            yield from walk(arg, depth + 1 if arg == name else 0, [*path, name])

    for name in requested:
        yield from walk(name, 0, [])


def _defined_in(fixture: pytest.FixtureDef[object]) -> tuple[str, str]:
    try:
        source = Path(inspect.getfile(fixture.func)).resolve()
    except TypeError:  # a builtin: no file, not ours
        return ("", fixture.argname)
    if not source.is_relative_to(_TESTS):
        return ("", fixture.argname)
    return (source.relative_to(_TESTS).as_posix(), fixture.argname)


def _real_names(module: types.ModuleType) -> list[str]:
    """Return the names in ``module`` that are Docker, moto, or a sandbox launcher."""
    found = []
    for name, value in vars(module).items():
        origin = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if not isinstance(origin, str):
            continue
        package = origin.split(".")[0]
        if package in REAL_PACKAGES or (
            package in SANDBOX_PACKAGES and getattr(value, "__qualname__", None) in LAUNCHERS
        ):
            found.append(name)
    return found
