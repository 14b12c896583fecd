"""ECS's eventual consistency on the sandbox's moto server: stale DescribeServices after a write."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto.backends import get_backend

from ecs_sandbox.consistency import Write, plan_answer
from ecs_sandbox.moto_server import MotoServer
from ecs_sandbox.realism import IDEALISED, REALISTIC, Realism

pytestmark = pytest.mark.integration

CLUSTER = "consistency"
ARN = "arn:aws:ecs:us-east-1:123456789012:service/consistency/web"
#: a 5 s AWS window at scale 0.1: 0.5 s of sandbox time, every read inside it stale
#: a 2-s window: the reads "right after" a write must fall inside it on a busy CI host too (with a
#: 0.5-s window one did not, once: its DescribeServices came more than half a second after the update)
ALWAYS_STALE = replace(
    REALISTIC, time_scale=0.4, consistency_window_seconds=5.0, consistency_stale_probability=1.0
)


def _svc(revision: int, arn: str = ARN) -> dict[str, Any]:
    return {"serviceArn": arn, "taskDefinition": f"td:{revision}", "tags": [{"key": "k", "value": "v"}]}


class TestPlanAnswer:
    """The pure decision: which services of one DescribeServices answer a client sees stale."""

    UPDATED, CREATED = {ARN: Write(10.0, _svc(1))}, {ARN: Write(10.0, None)}
    MISSING = [{"arn": ARN, "reason": "MISSING"}]
    CASES = [
        ("no write: the truth", {}, 0.0, 0.0, [_svc(2)], []),
        ("updated inside the window, coin stale: the state before", UPDATED, 10.2, 0.0, [_svc(1)], []),
        ("updated inside the window, coin fresh: the truth", UPDATED, 10.2, 0.9, [_svc(2)], []),
        ("window over: the truth", UPDATED, 10.5, 0.0, [_svc(2)], []),
        ("created inside the window, coin stale: MISSING", CREATED, 10.1, 0.0, [], MISSING),
        ("another service's write: the truth", {ARN + "x": Write(10.0, None)}, 10.1, 0.0, [_svc(2)], []),
    ]

    @pytest.mark.parametrize(
        ("name", "writes", "now", "draw", "services", "failures"), CASES, ids=[c[0] for c in CASES]
    )
    def test_answer(
        self,
        name: str,
        writes: dict[str, Write],
        now: float,
        draw: float,
        services: list[Any],
        failures: list[Any],
    ) -> None:
        """Each row: the services and failures the client is answered."""
        seen = plan_answer({"services": [_svc(2)], "failures": []}, writes, now, 0.5, lambda: draw, 0.5, True)
        assert (seen["services"], seen["failures"]) == (services, failures)

    def test_stale_answer_without_include_tags_has_no_tags(self) -> None:
        """The remembered state carries tags; a call that did not ask for TAGS gets none."""
        seen = plan_answer(
            {"services": [_svc(2)]}, {ARN: Write(0.0, _svc(1))}, 0.1, 1.0, lambda: 0.0, 1.0, False
        )
        assert seen["services"] == [{"serviceArn": ARN, "taskDefinition": "td:1"}]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer(profile=ALWAYS_STALE, consistency_seed=7)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ecs(moto: MotoServer) -> Iterator[Any]:
    moto.consistency.configure(ALWAYS_STALE)
    client = boto3.client(
        "ecs",
        endpoint_url=moto.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_cluster(clusterName=CLUSTER)
    for revision in (1, 2):
        client.register_task_definition(
            family="web", containerDefinitions=[{"name": "web", "image": f"web:{revision}", "memory": 64}]
        )
    yield client
    for arn in client.list_services(cluster=CLUSTER)["serviceArns"]:
        client.delete_service(cluster=CLUSTER, service=arn, force=True)
    moto.consistency.clear()


def _create(ecs: Any, name: str = "web") -> str:
    # desiredCount 0: a sandbox scheduler sharing this process's moto backends starts no task for it
    answer = ecs.create_service(cluster=CLUSTER, serviceName=name, taskDefinition="web:1", desiredCount=0)
    return str(answer["service"]["serviceArn"])


def _task_definition(ecs: Any, name: str = "web") -> str:
    return str(ecs.describe_services(cluster=CLUSTER, services=[name])["services"][0]["taskDefinition"])


def _wait_out(profile: Realism) -> None:
    time.sleep(profile.scaled(profile.consistency_window_seconds) + 0.05)


class TestOverHttp:
    def test_describe_right_after_update_shows_the_previous_task_definition_then_the_new(
        self, ecs: Any
    ) -> None:
        """Inside the window DescribeServices answers web:1 after an UpdateService to web:2, then web:2."""
        _create(ecs)
        _wait_out(ALWAYS_STALE)
        answer = ecs.update_service(cluster=CLUSTER, service="web", taskDefinition="web:2")
        assert answer["service"]["taskDefinition"].endswith("web:2")  # the write's own answer is new
        assert _task_definition(ecs).endswith("web:1")
        _wait_out(ALWAYS_STALE)
        assert _task_definition(ecs).endswith("web:2")

    def test_describe_right_after_create_answers_missing_then_the_service(self, ecs: Any) -> None:
        """A service just created is a MISSING failure inside the window, and found after it."""
        arn = _create(ecs)
        first = ecs.describe_services(cluster=CLUSTER, services=["web"])
        assert first["services"] == []
        assert first["failures"] == [{"arn": arn, "reason": "MISSING"}]
        _wait_out(ALWAYS_STALE)
        assert [
            s["serviceArn"] for s in ecs.describe_services(cluster=CLUSTER, services=["web"])["services"]
        ] == [arn]

    def test_another_process_sees_the_stale_state_too(self, ecs: Any, moto: MotoServer) -> None:
        """A DescribeServices from another process (as the worker's) inside the window is stale as well."""
        slow = replace(ALWAYS_STALE, time_scale=1.0)  # a 5 s window: time for a python process to start
        moto.consistency.configure(slow)
        _create(ecs)
        _wait_out(slow)
        ecs.update_service(cluster=CLUSTER, service="web", taskDefinition="web:2")
        code = (
            "import boto3, sys; c = boto3.client('ecs', endpoint_url=sys.argv[1], region_name='us-east-1',"
            " aws_access_key_id='t', aws_secret_access_key='t');"
            f" s = c.describe_services(cluster='{CLUSTER}', services=['web'])['services'];"
            " print(s[0]['taskDefinition'])"
        )
        started = time.monotonic()
        seen = subprocess.run(
            [sys.executable, "-c", code, moto.endpoint_url],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        assert time.monotonic() - started < slow.scaled(slow.consistency_window_seconds)
        assert seen.endswith("web:1")

    def test_the_in_process_backend_is_consistent_inside_the_window(self, ecs: Any) -> None:
        """The scheduler reads moto's backend in-process: it sees web:2 while HTTP readers see web:1."""
        _create(ecs)
        _wait_out(ALWAYS_STALE)
        ecs.update_service(cluster=CLUSTER, service="web", taskDefinition="web:2")
        backend = get_backend("ecs")["123456789012"]["us-east-1"]
        services, _ = backend.describe_services(CLUSTER, ["web"])
        assert str(services[0].task_definition).endswith("web:2")
        assert _task_definition(ecs).endswith("web:1")

    def test_other_calls_answer_the_truth_inside_the_window(self, ecs: Any) -> None:
        """ListServices right after CreateService lists the new service (only DescribeServices is stale)."""
        arn = _create(ecs)
        assert ecs.list_services(cluster=CLUSTER)["serviceArns"] == [arn]
        assert ecs.describe_services(cluster=CLUSTER, services=["web"])["services"] == []

    def test_idealised_profile_is_consistent(self, ecs: Any, moto: MotoServer) -> None:
        """With IDEALISED every DescribeServices right after a write answers the new state."""
        moto.consistency.configure(IDEALISED)
        _create(ecs)
        ecs.update_service(cluster=CLUSTER, service="web", taskDefinition="web:2")
        assert _task_definition(ecs).endswith("web:2")

    def test_a_seeded_half_stale_window_repeats(self, ecs: Any, moto: MotoServer) -> None:
        """Probability 0.5 with a seed: the same calls get the same stale/fresh pattern, and both occur."""
        half = replace(ALWAYS_STALE, time_scale=1.0, consistency_stale_probability=0.5)
        patterns = []
        for run in range(2):
            moto.consistency.configure(half, seed=42)
            _create(ecs, f"web-{run}")
            ecs.update_service(cluster=CLUSTER, service=f"web-{run}", taskDefinition="web:2")
            patterns.append([_task_definition(ecs, f"web-{run}").rsplit(":", 1)[-1] for _ in range(12)])
        assert patterns[0] == patterns[1]
        assert set(patterns[0]) == {"1", "2"}
        print(json.dumps(patterns[0]))
