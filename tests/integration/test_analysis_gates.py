"""Analysis gates against a real Prometheus server scraping a test app whose error rate the test sets.

A canary goes through the real worker on the sandbox with an analysis gate on the app's error rate:
kept low, every step passes its measurements and the canary succeeds; raised when step 2 begins,
step 2's analysis fails and the canary is rolled back, naming the gate and the step.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from ecs_sandbox import Sandbox
from ecs_sandbox.blue_green import provision_blue_green
from sandbox_harness.prometheus import PrometheusServer
from sandbox_harness.stack import WorkerProcess
from tests.integration.conftest import unique
from tests.integration.error_rate_app import ERROR_RATE_QUERY, ErrorRateApp
from tests.integration.test_rolling import publish, served_version
from tests.integration.test_traffic_strategies import bg_request, events, wait_until_gone
from tests.support import wait_until

pytestmark = pytest.mark.integration


class Observed:
    """The test app and the Prometheus server scraping it every second."""

    def __init__(self, app: ErrorRateApp, prometheus: PrometheusServer) -> None:
        self.app, self.prometheus = app, prometheus

    def error_rate(self) -> float | None:
        """The error rate Prometheus computes now (None while it has too few samples)."""
        result = self.prometheus.query(ERROR_RATE_QUERY)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def calm(self) -> None:
        """Set the error rate to 0 and wait until Prometheus sees it below 1 %."""
        self.app.error_rate = 0.0
        wait_until(
            lambda: (rate := self.error_rate()) is not None and rate < 0.01, what="a calm app", timeout=30
        )


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    with (
        ErrorRateApp() as app,
        PrometheusServer(tmp_path_factory.mktemp("prometheus"), [app.target]) as server,
    ):
        yield Observed(app, server)


def gate(prometheus: PrometheusServer, count: int) -> dict[str, Any]:
    """The error-rate gate: under 5 % passes, 5 % or more fails; one measurement a second."""
    return {
        "name": "error-rate",
        "url": prometheus.url,
        "query": ERROR_RATE_QUERY,
        "success_condition": "result < 0.05",
        "failure_condition": "result >= 0.05",
        "interval_seconds": 1,
        "count": count,
        "failure_limit": 1,
    }


def verdicts(worker: WorkerProcess) -> dict[str, float]:
    """The worker's deploy_agent_gate_verdicts_total{kind="prometheus"} by result, from its metrics files."""
    registry = CollectorRegistry()
    MultiProcessCollector(
        registry, path=str(Path(worker.log_path).parent / f"metrics-{worker.hostname.split('@')[0]}")
    )
    return {
        result: registry.get_sample_value(
            "deploy_agent_gate_verdicts_total", {"kind": "prometheus", "result": result}
        )
        or 0.0
        for result in ("passed", "failed", "inconclusive")
    }


def canary_request(
    sandbox: Sandbox, push_app: Any, observed: Observed, count: int
) -> tuple[Any, dict[str, Any]]:
    cluster, service = "analysis", unique("web")
    setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
    steps = [{"weight": 10, "pause_seconds": 1}, {"weight": 50, "pause_seconds": 1}, {"weight": 100}]
    request = bg_request(setup, cluster, service, push_app("v2"), type="canary", steps=steps)
    request["analysis"] = [gate(observed.prometheus, count)]
    return setup, request


class TestAnalysisGates:
    def test_a_low_error_rate_passes_every_step(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any, observed: Observed
    ) -> None:
        """Error rate kept at 0: every step's 3 measurements succeed, the canary succeeds, all recorded."""
        observed.calm()
        setup, request = canary_request(sandbox, push_app, observed, count=3)
        before = verdicts(worker)
        result = publish(request)
        assert result["outcome"] == "succeeded", (result["error"], result["stages"])
        measured = result["analysis"]
        assert [m["step"] for m in measured] == [
            f"step {i} ({w}%)" for i, w in ((1, 10), (2, 50), (3, 100)) for _ in range(3)
        ]
        assert {m["verdict"] for m in measured} == {"successful"}
        assert all(m["gate"] == "error-rate" and m["query"] == ERROR_RATE_QUERY for m in measured)
        assert all(0 <= m["value"] < 0.05 for m in measured)
        shown = [e for e in events(request["deployment_id"]) if e["event"] == "analysis_measurement"]
        assert [(e["step"], e["value"]) for e in shown] == [(m["step"], m["value"]) for m in measured]
        after = verdicts(worker)
        assert after["passed"] - before["passed"] == 9
        assert served_version(setup) == "v2"

    def test_a_rising_error_rate_at_step_two_rolls_back_naming_gate_and_step(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any, observed: Observed
    ) -> None:
        """Errors raised as step 2 begins fail its analysis: rolled back by trigger analysis, naming both."""
        observed.calm()
        setup, request = canary_request(sandbox, push_app, observed, count=10)
        before = verdicts(worker)

        def raise_errors_at_step_two() -> None:
            wait_until(
                lambda: any(
                    e.get("label", "").startswith("step 2") for e in events(request["deployment_id"])
                ),
                what="step 2",
                timeout=120,
                interval=0.1,
            )
            observed.app.error_rate = 0.5

        raising = threading.Thread(target=raise_errors_at_step_two, daemon=True)
        raising.start()
        try:
            result = publish(request)
        finally:
            raising.join(5)
            observed.app.error_rate = 0.0
        print(
            f"\nanalysis measurements: {[(m['step'], m['value'], m['verdict']) for m in result['analysis']]}"
        )
        assert result["outcome"] == "rolled_back", (result["error"], result["stages"])
        rollback = result["rollback"]
        assert rollback["trigger"] == "analysis"
        assert rollback["reason"].startswith("step 2 (50%): analysis error-rate failed: 2 of ")
        assert "failure_condition result >= 0.05" in rollback["reason"]
        measured = result["analysis"]
        step_one = [m for m in measured if m["step"] == "step 1 (10%)"]
        step_two = [m for m in measured if m["step"] == "step 2 (50%)"]
        assert [m["verdict"] for m in step_one] == ["successful"] * 10
        assert [m["verdict"] for m in step_two].count("failed") == 2
        assert step_two[-1]["verdict"] == "failed"
        assert step_two[-1]["value"] >= 0.05
        assert not [m for m in measured if m["step"].startswith("step 3")]
        after = verdicts(worker)
        assert after["failed"] - before["failed"] == 2
        assert after["passed"] - before["passed"] == len(measured) - 2
        wait_until_gone("analysis", f"{request['service_name']}-canary")
        assert served_version(setup) == "v1"
