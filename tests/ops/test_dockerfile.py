"""Dockerfile and .dockerignore of the worker image (read, not built: no base image can be pulled here)."""

from __future__ import annotations

import json
import re

from tests.ops.tools import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """Return the arguments of every ``NAME`` instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, re.MULTILINE)]


class TestDockerfile:
    def test_runs_as_an_unprivileged_user(self) -> None:
        """The last USER is a named non-root user."""
        assert instructions("USER")[-1] not in {"root", "0", "0:0"}

    def test_multiprocess_metrics_dir_is_set_and_owned_by_that_user(self) -> None:
        """PROMETHEUS_MULTIPROC_DIR=/tmp/metrics is set, created and chowned to the worker's user."""
        user = instructions("USER")[-1]
        assert any("PROMETHEUS_MULTIPROC_DIR=/tmp/metrics" in env for env in instructions("ENV"))
        assert any(f"chown {user}:{user} /tmp/metrics" in run for run in instructions("RUN"))

    def test_starts_a_worker_with_metrics_and_stops_it_warmly(self) -> None:
        """deploy-agent is the entrypoint, the worker serves metrics on 9100, SIGTERM stops it."""
        assert json.loads(instructions("ENTRYPOINT")[-1]) == ["deploy-agent"]
        assert json.loads(instructions("CMD")[-1]) == ["worker", "--metrics-port", "9100"]
        assert instructions("STOPSIGNAL") == ["SIGTERM"]
        assert instructions("EXPOSE") == ["9100"]

    def test_build_context_leaves_out_state_and_secrets_sources(self) -> None:
        """.dockerignore keeps .git, the virtualenv, sandbox state and tests out of the build context."""
        lines = (ROOT / ".dockerignore").read_text().splitlines()
        ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
        assert {".git", ".venv", ".sandbox", "tests"} <= ignored
        assert not {"src", "pyproject.toml", "README.md"} & ignored
