"""Unit tests of the core and the models run without Docker and moto: not even imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_PARTS = ("docker", "moto", "ecs_sandbox", "sandbox_harness")

# Loaded into the pytest run below; says at the session's end which real parts were ever imported.
PLUGIN = f"""
import sys

def pytest_sessionfinish(session, exitstatus):
    loaded = sorted(name for name in {REAL_PARTS!r} if name in sys.modules)
    print(f"\\nREAL PARTS IMPORTED: {{loaded}} (collected {{session.testscollected}})")
"""


def test_core_and_model_tests_import_neither_docker_nor_moto(tmp_path: Path) -> None:
    """A run of tests/core and tests/models (conftests included) leaves Docker and moto unimported."""
    (tmp_path / "real_parts_probe.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "pytest", "tests/core", "tests/models", "-q", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*command, "-p", "real_parts_probe", "--continue-on-collection-errors"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    said = [line for line in run.stdout.splitlines() if line.startswith("REAL PARTS IMPORTED")]
    assert said, run.stdout[-3000:] + run.stderr[-3000:]
    assert said[0].startswith("REAL PARTS IMPORTED: [] "), said[0]
    assert "(collected 0)" not in said[0]
