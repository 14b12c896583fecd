"""A real Prometheus scraping a real worker: the rollback rate and the counters as Prometheus computes them.

One worker (Redis DBs 3-5, its own metrics port) takes two rolling deployments through the
sandbox: one succeeds, one crashes and is rolled back. Prometheus (the Debian binary) scrapes it
every second with prometheus/rules/deploy-agent.yml loaded.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import redis
import requests
import yaml

from deploy_agent.settings import Settings
from deploy_agent.worker.app import create_app
from ecs_sandbox.environment import Sandbox, provision_service
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.ops.tools import RULES_FILE, as_query, dashboard_exprs, our_names_in, require_tool
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:" + os.environ.get("DEPLOY_AGENT_REDIS_PORT", "6379")
DBS = {"broker_db": 3, "result_db": 4, "state_db": 5}
APPS = Path(__file__).resolve().parents[2] / "examples"
ECR_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def wait_for(what: str, check: Any, timeout: float) -> Any:
    """Return check()'s first truthy value, polling; a server not answering yet is not an answer."""
    return wait_until(check, what=what, timeout=timeout, interval=0.25, ignoring=(requests.RequestException,))


@dataclass
class Observed:
    """What the module's fixture leaves running: the worker's metrics URL and Prometheus's API."""

    metrics_url: str
    prometheus_url: str
    results: list[dict[str, Any]]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Return the instant vector Prometheus answers for ``promql`` (fails on a query error)."""
        answer = requests.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
        body = answer.json()
        assert body["status"] == "success", (promql, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def values(self, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in self.query(promql)
        }


def push_app(sandbox: Sandbox, version: str, mode: str) -> str:
    """Build the example web app with a version and mode, push it; return its ECR-style URI."""
    api = docker.APIClient(
        base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), version="auto"
    )
    tag, local = f"{version}-{mode}", f"{sandbox.registry_host}/web"
    for chunk in api.build(
        path=str(APPS / "web"),
        tag=f"{local}:{tag}",
        buildargs={"VERSION": version, "MODE": mode},
        network_mode="host",
        decode=True,
        rm=True,
    ):
        assert "error" not in chunk, chunk
    for chunk in api.push(local, tag=tag, stream=True, decode=True):
        assert "error" not in chunk, chunk
    return f"{ECR_HOST}/web:{tag}"


def deployment(sandbox: Sandbox, version: str, mode: str) -> dict[str, Any]:
    """Return a rolling deployment message for a new one-task service running v1."""
    cluster, service = "ops", f"prom-{uuid.uuid4().hex[:8]}"
    svc = provision_service(sandbox, cluster, service, image=push_app(sandbox, "v1", "ok"), desired_count=1)
    return {
        "deployment_id": f"ops-{uuid.uuid4().hex[:8]}",
        "cluster_name": cluster,
        "service_name": service,
        "build": {"context": "web", "build_args": {"VERSION": version, "MODE": mode}, "target": "app"},
        "image": {"repository": "web", "tag": f"{version}-{mode}"},
        "health_check": {"url": f"{svc.url}/health", "healthy_threshold": 2},
        "timeout_seconds": 120,
    }


def start_prometheus(directory: Path, target: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start the Prometheus server on a loopback port, scraping ``target`` every second with our rules."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [{"job_name": "deploy-agent", "static_configs": [{"targets": [target]}]}],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (directory / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            require_tool("prometheus"),
            f"--config.file={directory / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={directory / 'data'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for("Prometheus to be ready", lambda: requests.get(f"{url}/-/ready", timeout=1).ok, 30)
    return proc, url


@pytest.fixture(scope="module")
def observed(session_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """Start a worker and Prometheus, run one good and one crashing rolling deployment through them."""
    directory = tmp_path_factory.mktemp("prometheus")
    for db in DBS.values():
        redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()
    metrics_port = free_port()
    config = StackConfig(
        aws_endpoint_url=session_sandbox.aws_endpoint_url,
        registry_host=session_sandbox.registry_host,
        build_root=APPS,
        redis_url=REDIS_URL,
        poll_interval_seconds=0.1,
        extra_env={
            "AWS_MAX_ATTEMPTS": "2",
            "DEPLOY_AGENT_HEALTH_INTERVAL_DEFAULT_SECONDS": "0.1",
            "DEPLOY_AGENT_METRICS_PORT": str(metrics_port),
        },
        **DBS,
    )
    env = config.env()
    publisher = create_app(
        Settings(
            broker_url=env["DEPLOY_AGENT_BROKER_URL"],
            result_backend=env["DEPLOY_AGENT_RESULT_BACKEND"],
            state_redis_url=env["DEPLOY_AGENT_STATE_REDIS_URL"],
        ),
        set_as_current=False,
    )
    messages = [deployment(session_sandbox, "v2", "ok"), deployment(session_sandbox, "v3", "crash")]
    with WorkerProcess(config, directory / "worker.log", concurrency=2, name="ops").start():
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        wait_for("the worker's metrics endpoint", lambda: requests.get(metrics_url, timeout=1).ok, 30)
        prometheus, prometheus_url = start_prometheus(directory, f"127.0.0.1:{metrics_port}")
        try:
            sent = [publisher.send_task("deploy_agent.deploy", kwargs={"request": m}) for m in messages]
            results = [r.get(timeout=120) for r in sent]
            observed = Observed(metrics_url, prometheus_url, results)
            # rate() needs two samples of a series; the series a deployment's end creates were just born.
            wait_for(
                "two scrapes of the finished deployments",
                lambda: observed.query(
                    "min(count_over_time(deploy_agent_deployment_duration_seconds_count[1h])) >= 2"
                ),
                15,
            )
            yield observed
        finally:
            prometheus.terminate()
            prometheus.wait(10)
            publisher.close()


class TestPrometheusServer:
    def test_deployments_ended_as_expected(self, observed: Observed) -> None:
        """The worker reports one rolling deployment succeeded and one rolled back (the premise)."""
        assert [r["outcome"] for r in observed.results] == ["succeeded", "rolled_back"], observed.results

    def test_deployments_total_by_strategy_and_outcome(self, observed: Observed) -> None:
        """Prometheus holds deploy_agent_deployments_total 1 for rolling succeeded and 1 for rolled_back."""

        def both() -> dict[tuple[str, ...], float] | None:
            # The worker creates every strategy x outcome series at 0 when it starts; keep the counted ones.
            values = observed.values("deploy_agent_deployments_total", "strategy", "outcome")
            counted = {labels: value for labels, value in values.items() if value > 0}
            return counted if len(counted) == 2 else None

        values = wait_for("both outcomes to be scraped", both, 15)
        assert values == {("rolling", "succeeded"): 1.0, ("rolling", "rolled_back"): 1.0}

    def test_rollback_rate_is_one_half(self, observed: Observed) -> None:
        """The recording rule gives a rolling rollback rate of 0.5 after one success and one rollback."""

        def rate() -> dict[tuple[str, ...], float] | None:
            values = observed.values("deploy_agent:rollback_rate:ratio_1h", "strategy")
            return values if values.get(("rolling",)) == 0.5 else None

        assert wait_for("the rollback rate to reach 0.5", rate, 15) == {("rolling",): 0.5}

    def test_rules_evaluate_without_errors(self, observed: Observed) -> None:
        """Every recording rule and alert evaluates cleanly against the real scrape; no alert fires."""
        wait_for("the rollback rate", lambda: observed.query("deploy_agent:rollback_rate:ratio_1h"), 15)
        groups = requests.get(f"{observed.prometheus_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        declared = yaml.safe_load(RULES_FILE.read_text())["groups"]
        assert sorted(r["name"] for r in rules) == sorted(
            r.get("record") or r["alert"] for group in declared for r in group["rules"]
        )
        assert {rule["name"]: rule["health"] for rule in rules} == {rule["name"]: "ok" for rule in rules}
        assert [rule["name"] for rule in rules if rule.get("state") == "firing"] == []
        assert observed.values('up{job="deploy-agent"}') == {(): 1.0}

    def test_dashboard_queries_return_data(self, observed: Observed) -> None:
        """Each dashboard query parses in Prometheus and returns series when its metrics have samples."""
        wait_for("the rollback rate", lambda: observed.query("deploy_agent:rollback_rate:ratio_1h"), 15)
        scraped = {r["metric"]["__name__"] for r in observed.query('{__name__=~"deploy_agent.*"}')}
        for expr in dashboard_exprs():
            result = observed.query(as_query(expr))
            if our_names_in(expr) <= scraped:
                assert result, f"no data for {expr}"

    def test_scrape_passes_promtool_check_metrics(self, observed: Observed) -> None:
        """The worker's multiprocess exposition passes promtool check metrics (format and naming lint)."""
        exposition = requests.get(observed.metrics_url, timeout=5).text
        assert "deploy_agent_deployments_total" in exposition
        run = subprocess.run(
            [require_tool("promtool"), "check", "metrics"],
            input=exposition,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert run.returncode == 0, run.stdout + run.stderr
