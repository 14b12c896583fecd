"""The operator's policy through a real worker: each hostile message of the review ends ``rejected``
naming the rule, with no AWS call, no Docker build and no outgoing connection; every rejection is
counted; a cluster's deployment limit makes a deployment wait its turn, holding no process.

One worker (on a Redis of its own) serves the whole module; messages are published in parallel.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import docker
import pytest
import redis
import requests

from deploy_agent.adapters.redis_locks import ClusterSlots
from deploy_agent.adapters.redis_store import PREFIX
from ecs_sandbox.environment import Sandbox, provision_service
from sandbox_harness.redis_server import LocalRedis
from sandbox_harness.stack import WorkerProcess
from tests.integration.conftest import ACCOUNT, ECR_HOST, unique
from tests.integration.test_security import IsolatedStack, isolated_stack, prebuilt_release
from tests.support import free_port

pytestmark = pytest.mark.integration

FOREIGN = "999999999999"
SECRETS = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:pol/"
CLUSTER = "pol-main"


class CountingListener:
    """A loopback TCP listener that counts the connections made to it (and answers none)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[CountingListener]:
    counting = CountingListener()
    yield counting
    counting.close()


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def stack(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory, metrics_port: int
) -> Iterator[IsolatedStack]:
    root = tmp_path_factory.mktemp("policy")
    policy = {
        "regions": ["us-east-1"],
        "clusters": ["pol-*"],
        "services": ["web*", "slot-*"],
        "repositories": ["web", "team/*"],
        "registries": [ECR_HOST, sandbox.registry_host],
        "task_role_arns": [f"arn:aws:iam::{ACCOUNT}:role/app-*"],
        "execution_role_arns": [f"arn:aws:iam::{ACCOUNT}:role/ecs-exec"],
        "secret_arn_prefixes": [SECRETS],
        "max_desired_count": 5,
        "max_concurrent_deployments_per_cluster": 1,
        "outbound": {"url_hosts": ["127.0.0.1"], "webhook_hosts": ["127.0.0.1"], "allow_loopback": True},
    }
    path = root / "policy.json"
    path.write_text(json.dumps(policy))
    env = {"DEPLOY_AGENT_POLICY": str(path), "DEPLOY_AGENT_METRICS_PORT": str(metrics_port)}
    with isolated_stack(sandbox, root, "policy", extra_env=env) as started:
        yield started


def _rejected_count(port: int) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    pattern = re.compile(r"^deploy_agent_deployments_total\{([^}]*)\} (\S+)$", re.MULTILINE)
    return sum(float(value) for labels, value in pattern.findall(text) if 'outcome="rejected"' in labels)


def _task_definition(**changes: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "port_mappings": [{"container_port": 8080}],
        "secrets": {"DB_PASSWORD": f"{SECRETS}db-AbCdEf"},
        "log_configuration": {"log_driver": "awslogs", "options": {"awslogs-group": "/ecs/web"}},
    }
    container.update(changes.pop("container", {}))
    return {
        "family": "web",
        "cpu": "256",
        "memory": "512",
        "task_role_arn": f"arn:aws:iam::{ACCOUNT}:role/app-web",
        "execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/ecs-exec",
        "container_definitions": [container],
        **changes,
    }


def hostile_messages(port: int, label: str) -> dict[str, tuple[str, Any, str]]:
    """Return name -> (task, request, the rule it must be rejected for): the review's finding 2 and more."""
    hook = f"http://127.0.0.1:{port}/hook"
    health = {"url": f"http://127.0.0.1:{port}/health", "healthy_threshold": 1}

    def deploy(**fields: Any) -> dict[str, Any]:
        message: dict[str, Any] = {
            "deployment_id": unique("hostile"),
            "cluster_name": CLUSTER,
            "service_name": "web",
            "image": {"uri": f"{ECR_HOST}/web:v1"},
            "health_check": health,
            "notify": {"webhooks": [hook]},
        }
        message.update(fields)
        return message

    def build(**fields: Any) -> dict[str, Any]:
        # A valid build of examples/web: if it ran, an image with this label would exist.
        spec = {"context": "web", "labels": {"policy-test": label}}
        return deploy(image={"repository": "web", "tag": label}, build=spec, **fields)

    host_network = _task_definition(network_mode="host", requires_compatibilities=["EC2"])
    host_network["container_definitions"][0].pop("port_mappings")
    splunk = {
        "log_driver": "splunk",
        "options": {"splunk-url": "https://splunk.attacker.example:8088"},
    }
    return {
        "an image from any registry": (
            "deploy",
            deploy(image={"uri": "registry.attacker.example/web:latest"}),
            "registries",
        ),
        "a foreign-account task role": (
            "deploy",
            deploy(task_definition=_task_definition(task_role_arn=f"arn:aws:iam::{FOREIGN}:role/app-admin")),
            "task_role_arns",
        ),
        "a secret outside the prefixes": (
            "deploy",
            deploy(
                task_definition=_task_definition(
                    container={
                        "secrets": {"DB": f"arn:aws:secretsmanager:us-east-1:{FOREIGN}:secret:x-AbCdEf"}
                    }
                )
            ),
            "secret_arn_prefixes",
        ),
        "network_mode host": ("deploy", deploy(task_definition=host_network), "allow_host_network"),
        "a splunk log driver": (
            "deploy",
            deploy(task_definition=_task_definition(container={"log_configuration": splunk})),
            "log_drivers",
        ),
        "an ECR policy text": (
            "deploy",
            build(ecr={"lifecycle_policy": {"policy_text": json.dumps({"rules": [{"rulePriority": 1}]})}}),
            "allow_ecr_lifecycle_policy",
        ),
        "a cluster not allowed": ("deploy", build(cluster_name="payments"), "clusters"),
        "a desired count too big": ("deploy", deploy(desired_count=500), "max_desired_count"),
        "the instance metadata service as health URL": (
            "deploy",
            deploy(health_check={"url": "http://169.254.169.254/latest/meta-data/"}),
            "outbound.url_hosts",
        ),
        "a health URL host not allowed": (
            "deploy",
            deploy(health_check={"url": f"http://localhost:{port}/health"}),
            "outbound.url_hosts",
        ),
        "a rollback to a cluster not allowed": (
            "rollback",
            {"cluster_name": "payments", "service_name": "web", "requested_by": "agent"},
            "clusters",
        ),
    }


class TestHostileMessages:
    def test_each_is_rejected_naming_the_rule_and_nothing_is_touched(
        self,
        stack: IsolatedStack,
        sandbox: Sandbox,
        listener: CountingListener,
        docker_api: docker.APIClient,
        metrics_port: int,
    ) -> None:
        """Rejected, naming the rule; zero AWS calls, zero builds, zero connections; each one counted."""
        label = uuid.uuid4().hex
        cases = hostile_messages(listener.port, label)
        invalid = {"an array instead of an object": ("deploy", [1, 2], "")}
        rejected_before = _rejected_count(metrics_port)
        calls_before = sandbox.moto.api_calls()
        pending = {
            name: stack.app.send_task(f"deploy_agent.{task}", kwargs={"request": request})
            for name, (task, request, _) in {**cases, **invalid}.items()
        }
        results = {name: result.get(timeout=60) for name, result in pending.items()}
        time.sleep(1)  # anything a rejection might still send (a webhook) would be under way
        calls_after = sandbox.moto.api_calls()

        wrong = {}
        for name, (_, _, rule) in cases.items():
            result = results[name]
            rules = [error.get("rule") for error in result.get("errors", [])]
            if result["outcome"] != "rejected" or rules != [rule]:
                wrong[name] = (result["outcome"], result.get("errors"))
        print(f"\nhostile messages={len(cases)} not rejected for their rule={wrong}")
        assert wrong == {}
        assert results["an array instead of an object"]["outcome"] == "rejected"
        assert "got a JSON array" in results["an array instead of an object"]["errors"][0]["problem"]
        assert calls_after == calls_before, "no AWS call for a rejected message"
        assert docker_api.images(filters={"label": f"policy-test={label}"}) == [], "nothing was built"
        assert listener.accepted == 0, "no outgoing connection (health checks, webhooks)"
        deadline = time.monotonic() + 10
        while _rejected_count(metrics_port) < rejected_before + len(pending) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _rejected_count(metrics_port) == rejected_before + len(pending), "each rejection counted once"

    def test_a_rollback_with_bad_inputs_is_rejected_before_aws(
        self, stack: IsolatedStack, sandbox: Sandbox
    ) -> None:
        """cluster/service/region/id/timeout of a manual rollback are checked like a message's fields."""
        bad = {
            "cluster_name": "pol-main; rm -rf /",
            "service_name": "web",
            "region": "mars-1",
            "deployment_id": "../../etc",
            "timeout_seconds": "soon",
        }
        calls_before = sandbox.moto.api_calls()
        result = stack.app.send_task("deploy_agent.rollback", kwargs={"request": bad}).get(timeout=60)
        assert result["outcome"] == "rejected"
        assert {e["field"] for e in result["errors"]} == {
            "cluster_name",
            "region",
            "deployment_id",
            "timeout_seconds",
        }
        assert sandbox.moto.api_calls() == calls_before


class TestClusterLimit:
    def test_a_full_cluster_makes_the_next_deployment_wait_its_turn(
        self, stack: IsolatedStack, sandbox: Sandbox, push_app: Any
    ) -> None:
        """With one deployment per cluster allowed, two services deploy one after the other; both succeed."""
        image_v1, image_v2 = push_app("v1"), push_app("v2")
        services = [unique("slot"), unique("slot")]
        provisioned = [
            provision_service(sandbox, CLUSTER, s, image=image_v1, desired_count=1) for s in services
        ]
        messages = [
            prebuilt_release(svc, CLUSTER, name, image_v2)
            for svc, name in zip(provisioned, services, strict=True)
        ]
        pending = [stack.app.send_task("deploy_agent.deploy", kwargs={"request": m}) for m in messages]
        results = [p.get(timeout=180) for p in pending]
        assert [r["outcome"] for r in results] == ["succeeded", "succeeded"], results
        state = redis.Redis.from_url(stack.config.env()["DEPLOY_AGENT_STATE_REDIS_URL"])

        def events_of(deployment_id: str) -> list[dict[str, Any]]:
            raw = cast(list[bytes], state.lrange(f"{PREFIX}events:{deployment_id}", 0, -1))
            return [json.loads(item) for item in raw]

        waited = []
        for message in messages:
            events = events_of(message["deployment_id"])
            waited.append(any(e.get("event") == "waiting_for_cluster_slot" for e in events))
        assert waited.count(True) >= 1, "one of the two waited for the cluster's slot"
        # The one that waited started its stages only after the other had finished.
        later = messages[waited.index(True)]["deployment_id"]
        other = next(r for r in results if r["deployment_id"] != later)
        started = next(e for e in events_of(later) if e.get("event") == "started")
        assert datetime.fromisoformat(started["at"]) >= datetime.fromisoformat(other["finished_at"])


class TestClusterSlots:
    def test_slots_are_taken_pruned_and_released(self, tmp_path: Path) -> None:
        """A full cluster refuses; a holder whose lock is gone or whose result is stored is pruned."""
        with LocalRedis(root=tmp_path / "redis", persistent=False) as local:
            client = redis.Redis.from_url(f"{local.url}/0")
            slots = ClusterSlots(client, "c", 2, "us-east-1")
            for holder in ("a", "b", "c"):
                client.set(f"lock:{holder}", holder)
            assert slots.take("a", "lock:a")
            assert slots.take("b", "lock:b")
            assert not slots.take("c", "lock:c"), "full"
            assert slots.take("a", "lock:a"), "a holder asking again keeps its slot"
            assert slots.take("c", "lock:c", force=True), "a running deployment takes one even when full"
            slots.release("c")
            client.delete("lock:a")  # a's worker died: its service lock lapsed
            assert slots.take("c", "lock:c")
            assert sorted(slots.holders()) == ["b", "c"]
            client.set(f"{PREFIX}result:b", "{}")  # b finished
            client.set("lock:d", "d")
            assert slots.take("d", "lock:d")
            assert sorted(slots.holders()) == ["c", "d"]
            assert not slots.take("e", "lock:e"), "e does not hold its lock: no slot is free anyway"


class TestWorkerStart:
    def test_the_worker_logs_its_policy(self, stack: IsolatedStack) -> None:
        text = stack.worker.log_path.read_text()
        assert f"enforcing the policy {stack.config.extra_env['DEPLOY_AGENT_POLICY']}" in text
        assert "no policy set" not in text

    def test_an_invalid_policy_stops_the_worker_with_a_clear_message(
        self, stack: IsolatedStack, tmp_path: Path
    ) -> None:
        """A policy file with a mistake: the worker refuses to start, naming the file, key and problem."""
        bad = tmp_path / "policy.toml"
        bad.write_text('clusters = "prod-*"\n')
        config = replace(stack.config, extra_env={**stack.config.extra_env, "DEPLOY_AGENT_POLICY": str(bad)})
        log = tmp_path / "worker.log"
        with pytest.raises(RuntimeError, match="worker exited"):
            WorkerProcess(config, log, concurrency=1, name="badpolicy").start(timeout=60)
        text = log.read_text()
        assert f"the policy file {bad} is invalid: clusters: Input should be a valid list" in text
        assert "ready." not in text
