"""Two workers on one host, started as the README shows: each keeps its own metrics.

Both run ``deploy-agent worker --metrics-port ...`` without ``--metrics-dir`` (and with their own
queues), so each gets the default directory. Worker A counts a deployment, then B starts: A's
``/metrics`` must still show A's count (a shared default directory was wiped by B's start). A third
worker pointed at A's directory on purpose is refused and wipes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from deploy_agent.worker.app import create_app
from deploy_agent.worker.metrics_dir import default_metrics_dir
from sandbox_harness.stack import StackConfig
from tests.integration.chaos import publisher_settings
from tests.integration.conftest import unique
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration


def worker_command(name: str, port: int, *extra: str) -> list[str]:
    cli = [sys.executable, "-m", "deploy_agent.cli", "worker", "-c", "1"]
    return [*cli, "--hostname", name, "--metrics-port", str(port), *extra]


def worker_env(config: StackConfig, queue: str, tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PROMETHEUS_MULTIPROC_DIR", "DEPLOY_AGENT_METRICS_PORT")
    }
    # TMPDIR: the default metrics directories land under this test's own temporary directory.
    return {
        **env,
        **config.env(),
        "DEPLOY_AGENT_QUEUE": queue,
        "TMPDIR": str(tmp_path),
        "DEPLOY_AGENT_LOG_FORMAT": "json",
    }


@contextmanager
def running_worker(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(
            lambda: proc.poll() is not None or b"ready." in log.read_bytes(),
            what=f"{command[command.index('--hostname') + 1]} to be ready",
            timeout=60,
            interval=0.2,
        )
        assert proc.poll() is None, f"worker exited with {proc.returncode}; see {log}"
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def rejected_count(port: int) -> float:
    """Return the worker's ``deploy_agent_deployments_total{outcome="rejected"}``, summed over strategies."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "deploy_agent_deployments_total" and sample.labels.get("outcome") == "rejected"
    )


def test_a_second_worker_on_the_host_leaves_the_first_ones_counts_alone(
    stack_config: StackConfig, tmp_path: Path
) -> None:
    """A counts a deployment, B (other port, queue) starts, A still shows it; a reused dir is refused."""
    port_a, port_b = free_port(), free_port()
    queue_a, queue_b = unique("qa"), unique("qb")
    with running_worker(
        worker_command("a@deploy-agent", port_a),
        worker_env(stack_config, queue_a, tmp_path),
        tmp_path / "a.log",
    ):
        settings = publisher_settings(stack_config).model_copy(update={"queue": queue_a})
        app = create_app(settings, set_as_current=False)
        # A message without a cluster or service is refused by A's pool process: one counted deployment.
        result = app.send_task(
            "deploy_agent.deploy", kwargs={"request": {"deployment_id": unique("bad")}}
        ).get(timeout=30)
        assert result["outcome"] == "rejected"
        wait_until(lambda: rejected_count(port_a) == 1, what="A to count the rejection", timeout=10)

        with running_worker(
            worker_command("b@deploy-agent", port_b),
            worker_env(stack_config, queue_b, tmp_path),
            tmp_path / "b.log",
        ):
            assert rejected_count(port_a) == 1, "starting B wiped A's metric files"
            assert rejected_count(port_b) == 0

            dir_a = default_metrics_dir("a@deploy-agent", queue_a, port_a, root=tmp_path)
            dir_b = default_metrics_dir("b@deploy-agent", queue_b, port_b, root=tmp_path)
            assert list(dir_a.glob("*.db")), f"A's metric files are not in its default directory {dir_a}"
            assert list(dir_b.glob("*.db"))

            refused = subprocess.run(
                worker_command("c@deploy-agent", free_port(), "--metrics-dir", str(dir_a)),
                env=worker_env(stack_config, unique("qc"), tmp_path),
                capture_output=True,
                timeout=60,
            )
            assert refused.returncode == 2, refused.stderr.decode()
            assert b"in use by a running worker (pid" in refused.stderr
            assert rejected_count(port_a) == 1, "the refused worker wiped A's metric files"
