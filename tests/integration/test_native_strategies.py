"""ECS's native blue/green, linear and canary, driven by a real worker through the sandbox's ECS.

The sandbox plays ECS's native controller (``ecs_sandbox.native_*``): service deployments, PAUSE
hooks, the production and test listener rules whose weights ECS shifts. AWS minutes run at the
test profile's time scale (0.02: a minute is 1.2 s).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from ecs_sandbox import Sandbox
from ecs_sandbox.native_setup import NativeSetup, provision_native
from sandbox_harness.stack import WorkerProcess
from tests.integration.conftest import unique
from tests.integration.load import Load
from tests.integration.test_rolling import publish, served_version
from tests.integration.test_traffic_strategies import events
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration


class Switch:
    """A health endpoint the test turns bad: 200 until ``fail()``, then 500."""

    def __init__(self) -> None:
        self.failing = False
        switch = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(500 if switch.failing else 200)
                self.end_headers()
                self.wfile.write(b"bad" if switch.failing else b"ok")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail(self) -> None:
        self.failing = True


@pytest.fixture
def switch() -> Iterator[Switch]:
    made = Switch()
    yield made
    made.server.shutdown()


def native_request(
    setup: NativeSetup, cluster: str, service: str, image: str, **strategy: Any
) -> dict[str, Any]:
    return {
        "deployment_id": unique("nat"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        "strategy": {
            "type": strategy.pop("type", "ecs_blue_green"),
            "test_url": f"{setup.test_url}/health",
            "production_url": f"{setup.url}/version",
            **strategy,
        },
        "health_check": {"url": f"{setup.url}/health", "unhealthy_threshold": 1, "timeout_seconds": 2},
        "timeout_seconds": 240,
    }


def production_weights(setup: NativeSetup, elbv2: Any = None) -> dict[str, int]:
    """The production rule's forward weights, by target group ARN."""
    elbv2 = elbv2 or boto3.client("elbv2")
    rule = elbv2.describe_rules(RuleArns=[setup.production_rule_arn])["Rules"][0]
    groups = rule["Actions"][0]["ForwardConfig"]["TargetGroups"]
    return {g["TargetGroupArn"]: g["Weight"] for g in groups}


class WeightWatch:
    """Samples the production rule's share on the new revision's target group every 50 ms.

    ECS shifts a step's traffic at one of its own ticks after the worker's CONTINUE, not at once (the
    sandbox's ticks come later still on a busy host): these samples say when each share took hold.
    """

    def __init__(self, setup: NativeSetup) -> None:
        self._setup = setup
        self.changes: list[tuple[float, float]] = []  # (time.time(), percent on the new revision)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WeightWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        elbv2 = boto3.client("elbv2")
        while not self._stop.wait(0.05):
            weights = production_weights(self._setup, elbv2)
            total = sum(weights.values())
            share = 100.0 * weights.get(self._setup.alternate_target_group_arn, 0) / total if total else 0.0
            if not self.changes or self.changes[-1][1] != share:
                self.changes.append((time.time(), share))

    def shifted_to(self, percent: float, after: float) -> float | None:
        """Return when the share first stood at ``percent`` from ``after`` on, None if it never did."""
        at_percent = (at for at, share in self.changes if at >= after and round(share) == round(percent))
        return next(at_percent, None)


def shares_per_step(
    load: Load, deployment_id: str, watch: WeightWatch
) -> list[tuple[float, float, int, float | None]]:
    """Return (expected %, observed % of v2, requests, seconds from the CONTINUE to ECS's shift or
    None when none was seen) for each production step the worker let ECS take.

    A step's traffic runs from ECS's shift after the worker's CONTINUE at one hook to the next
    hook's firing.
    """
    seen = events(deployment_id)
    answered = [e for e in seen if e["event"] == "hook_answered" and e["action"] == "CONTINUE"]
    reached = [e for e in seen if e["event"] == "hook_reached"]
    out = []
    for after, nxt in zip(answered[1:], reached[2:], strict=False):
        percent = float(nxt["traffic_percent"] or 0.0)
        continued = datetime.fromisoformat(after["at"]).timestamp()
        shifted = watch.shifted_to(percent, continued)
        start = (shifted if shifted is not None else continued) + 0.2  # requests already in flight
        end = datetime.fromisoformat(nxt["at"]).timestamp() - 0.1
        share, n = load.share("v2", start, end)
        out.append((percent, share * 100, n, None if shifted is None else shifted - continued))
    return out


class TestNativeBlueGreen:
    def test_under_load_it_succeeds_and_drops_nothing(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """ECS's blue/green with our hooks: SUCCESSFUL, 0 failed requests, v2 serves, every hook continued."""
        cluster, service = "native", unique("bg")
        setup = provision_native(sandbox, cluster, service, image=push_app("v1"), strategy="BLUE_GREEN")
        request = native_request(setup, cluster, service, push_app("v2"), bake_time_in_minutes=1)
        with Load(f"{setup.url}/version", rate=60) as load:
            result = publish(request)
        print(
            f"\nnative blue/green under load: {len(load.answers)} requests, {len(load.failures)} failed; "
            f"hooks {[(h['point'], h['action']) for h in result['service_deployment']['hooks']]}"
        )
        assert result["outcome"] == "succeeded", (result["error"], result["service_deployment"])
        assert load.failures == [], load.failures[:5]
        assert {a.body for a in load.answers} == {"v1", "v2"}
        assert served_version(setup) == "v2"
        native = result["service_deployment"]
        assert native["status"] == "SUCCESSFUL"
        assert [h["point"] for h in native["hooks"]] == [
            "test traffic",
            "before production traffic",
            "step 1 (100%)",
        ]
        assert {h["action"] for h in native["hooks"]} == {"CONTINUE"}
        stages = [s["stage"] for s in native["lifecycle_stages"]]
        assert "BAKE_TIME" in stages or "CLEAN_UP" in stages, stages
        assert result["zero_downtime"]["failures"] == 0
        ecs = boto3.client("ecs")
        config = ecs.describe_services(cluster=cluster, services=[service])["services"][0][
            "deploymentConfiguration"
        ]
        assert [h for h in config.get("lifecycleHooks", []) if h["targetType"] == "PAUSE"] == []
        listed = ecs.list_service_deployments(cluster=cluster, service=service)["serviceDeployments"]
        newest = max(listed, key=lambda d: d["createdAt"])
        assert (
            newest["serviceDeploymentArn"] == native["service_deployment_arn"]
        )  # taking hooks off started none


def binomial_spread(percent: float, n: int) -> float:
    """Return the standard deviation, in percentage points, of the share seen in ``n`` random picks."""
    p = percent / 100
    return 100 * math.sqrt(p * (1 - p) / n)


class TestNativeShares:
    @pytest.mark.parametrize(
        ("strategy", "expected"),
        [
            pytest.param(
                {"type": "ecs_linear", "step_percent": 25.0, "step_bake_time_in_minutes": 8},
                [25.0, 50.0, 75.0, 100.0],
            ),
            pytest.param(
                {"type": "ecs_canary", "canary_percent": 20.0, "canary_bake_time_in_minutes": 8},
                [20.0, 100.0],
            ),
        ],
        ids=["linear in quarters", "canary of 20 percent"],
    )
    def test_each_step_sends_the_share_ecs_was_told(
        self,
        sandbox: Sandbox,
        worker: WorkerProcess,
        push_app: Any,
        strategy: dict[str, Any],
        expected: list[float],
    ) -> None:
        """Between two hooks the production traffic on the new revision is the step's share."""
        cluster, service = "native", unique("sh")
        setup = provision_native(sandbox, cluster, service, image=push_app("v1"), strategy="BLUE_GREEN")
        request = native_request(setup, cluster, service, push_app("v2"), **dict(strategy))
        with WeightWatch(setup) as watch, Load(f"{setup.url}/version", rate=120, threads=4) as load:
            result = publish(request)
        assert result["outcome"] == "succeeded", (result["error"], result["service_deployment"])
        assert load.failures == []
        shares = shares_per_step(load, request["deployment_id"], watch)
        for want, seen, n, lag in shares[:-1]:
            shift = "no shift seen" if lag is None else f"ECS shifted {lag:.2f} s after the CONTINUE"
            print(f"\n{strategy['type']} step at {want:g}%: observed {seen:.1f}% of {n} requests; {shift}")
        assert [round(s[0]) for s in shares] == [round(w) for w in expected]
        for want, seen, n, lag in shares[:-1]:  # the last step is ECS's 100%, bake and clean-up
            assert lag is not None, f"the rule never stood at {want}% ({watch.changes})"
            # The balancer picks a target group at random per request, as ELB does: the share seen
            # in n requests spreads binomially. Four standard deviations (about 7 points at 50% in
            # the ~500 requests of an 8-minute bake on an idle machine) fail one step in 15,000 by
            # chance. What the check needs is enough requests that four deviations still tell the
            # step from its neighbours (0% and the next step): about 65 at 50% with steps 25 points
            # apart. A fixed count (150 in a 5-minute bake) failed on a loaded machine, where the
            # load's 4 threads sent 84-106 requests in a step, which tell steps apart as well.
            nearest = min(abs(want - other) for other in (0.0, *expected) if other != want)
            assert 4 * binomial_spread(want, n) < nearest, (want, n, nearest)
            assert abs(seen - want) <= 4 * binomial_spread(want, n), (want, seen, n)


class TestNativeRollback:
    def test_a_failing_gate_at_step_2_is_rolled_back_by_ecs_naming_step_and_gate(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any, switch: Switch
    ) -> None:
        """The health gate fails after step 2: StopServiceDeployment ROLLBACK, traffic back on blue."""
        cluster, service = "native", unique("rb")
        setup = provision_native(sandbox, cluster, service, image=push_app("v1"), strategy="BLUE_GREEN")
        request = native_request(
            setup,
            cluster,
            service,
            push_app("v2"),
            type="ecs_linear",
            step_percent=25.0,
            step_bake_time_in_minutes=1,
        )
        request["health_check"] = {"url": switch.url, "unhealthy_threshold": 1, "timeout_seconds": 2}

        def fail_after_step_1() -> None:
            wait_until(
                lambda: any(
                    e["event"] == "hook_answered" and e["point"] == "step 1 (25%)"
                    for e in events(request["deployment_id"])
                ),
                what="step 1 judged",
                timeout=120,
                interval=0.05,
            )
            switch.fail()

        flipper = threading.Thread(target=fail_after_step_1, daemon=True)
        flipper.start()
        result = publish(request)
        flipper.join(1)
        assert result["outcome"] == "rolled_back", (result["error"], result["service_deployment"])
        assert result["rollback"]["trigger"] == "health_check"
        assert result["rollback"]["reason"].startswith("step 2 (50%):"), result["rollback"]
        native = result["service_deployment"]
        assert native["stopped_with"] == "ROLLBACK"
        assert native["status"] == "ROLLBACK_SUCCESSFUL"
        assert native["hooks"][-1]["action"] == "ROLLBACK"
        assert native["hooks"][-1]["point"] == "step 2 (50%)"
        weights = production_weights(setup)
        assert weights[setup.target_group_arn] > 0, weights  # all production traffic back on blue
        assert weights[setup.alternate_target_group_arn] == 0, weights
        assert served_version(setup) == "v1"

    def test_a_hook_nobody_answers_in_time_is_rolled_back_by_ecs(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """An analysis that never concludes holds the hook past its timeout: ECS rolls back by itself."""
        cluster, service = "native", unique("to")
        setup = provision_native(sandbox, cluster, service, image=push_app("v1"), strategy="BLUE_GREEN")
        request = native_request(setup, cluster, service, push_app("v2"), hook_timeout_minutes=1)
        request["analysis"] = [
            {
                "name": "never",
                "url": f"http://127.0.0.1:{free_port()}",  # nothing listens: every query is inconclusive
                "query": "up",
                "success_condition": "result == 1",
                "interval_seconds": 1,
                "count": 50,
                "inconclusive": "pause",
                "inconclusive_limit": 1000,
            }
        ]
        result = publish(request)
        assert result["outcome"] in ("rolled_back", "timed_out"), (
            result["error"],
            result["service_deployment"],
        )
        native = result["service_deployment"]
        assert native["status"] == "ROLLBACK_SUCCESSFUL", native
        assert native["stopped_with"] is None  # ECS rolled back by itself
        assert "timed out" in result["rollback"]["reason"], result["rollback"]
        assert served_version(setup) == "v1"


class TestOtherController:
    @pytest.mark.parametrize("strategy", ["rolling", "canary"])
    def test_a_native_service_asked_for_with_our_strategies_is_rejected(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any, strategy: str
    ) -> None:
        """A service on ECS's native blue/green is not ours to roll or weight: rejected, untouched."""
        cluster, service = "native", unique("oc")
        setup = provision_native(sandbox, cluster, service, image=push_app("v1"), strategy="BLUE_GREEN")
        before = boto3.client("ecs").describe_services(cluster=cluster, services=[service])["services"][0]
        request: dict[str, Any] = {
            "deployment_id": unique("oc"),
            "cluster_name": cluster,
            "service_name": service,
            "image": {"uri": push_app("v2")},
            "strategy": {"type": "rolling"},
        }
        if strategy == "canary":
            request["strategy"] = {
                "type": "canary",
                "steps": [{"weight": 50}],
                "load_balancer": {
                    "listener_arn": setup.listener_arn,
                    "blue_target_group_arn": setup.target_group_arn,
                    "green_target_group_arn": setup.alternate_target_group_arn,
                },
            }
        result = publish(request)
        assert result["outcome"] == "rejected"
        problem = result["errors"][0]["problem"]
        assert "BLUE_GREEN" in problem, problem
        assert "ecs_blue_green" in problem, problem
        after = boto3.client("ecs").describe_services(cluster=cluster, services=[service])["services"][0]
        assert after["taskDefinition"] == before["taskDefinition"]
