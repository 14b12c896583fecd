"""Security end to end: the worker executes JSON only, and planted secrets never reach its output."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import pickle
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
import redis
import requests
from celery import Celery

from deploy_agent.settings import Settings
from deploy_agent.worker.app import create_app
from ecs_sandbox.environment import Sandbox, provision_service
from sandbox_harness.redis_server import LocalRedis
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.conftest import ACCOUNT, APPS, unique
from tests.integration.test_rolling import build_request, served_version
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

EMPTY_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class TouchOnUnpickle:
    """A pickle payload that creates ``path`` when it is unpickled (via ``pathlib.Path.touch``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


class ShellOnUnpickle:
    """A pickle payload that runs ``touch path`` in a shell when it is unpickled (via ``os.system``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def publish_raw(app: Celery, body: bytes, content_type: str, content_encoding: str) -> str:
    """Put a protocol-2 ``deploy_agent.deploy`` message with a hand-made body on the deploy queue."""
    task_id = str(uuid.uuid4())
    message = app.amqp.as_task_v2(task_id, "deploy_agent.deploy", kwargs={"request": {}})
    queue = app.amqp.queues[app.conf.task_default_queue]
    with app.producer_or_acquire() as producer:
        producer.publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            headers=message.headers,
            content_type=content_type,
            content_encoding=content_encoding,
            retry=True,
            **message.properties,
        )
    return task_id


def is_alive(pid: int | None) -> bool:
    """Return whether ``pid`` is a running (not zombie) process."""
    if pid is None:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def wait_for_log(log_path: Path, needles: list[str], timeout: float = 30.0) -> None:
    """Wait until every needle appears in the worker's log."""

    def missing() -> list[str]:
        text = log_path.read_text(errors="replace")
        return [n for n in needles if n not in text]

    wait_until(lambda: not missing(), what=f"{needles} in the worker log", timeout=timeout, interval=0.2)


def prebuilt_release(svc: Any, cluster: str, service: str, image: str) -> dict[str, Any]:
    return {
        "deployment_id": unique("sec"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        "health_check": {"url": f"{svc.url}/version", "healthy_threshold": 1},
    }


@dataclass
class IsolatedStack:
    """A worker on a Redis of its own: no other test session can take (or feed) its messages."""

    config: StackConfig
    app: Celery
    worker: WorkerProcess
    redis: LocalRedis


@contextmanager
def isolated_stack(
    sandbox: Sandbox,
    root: Path,
    name: str,
    *,
    password: str | None = None,
    tls: bool = False,
    extra_env: dict[str, str] | None = None,
) -> Iterator[IsolatedStack]:
    """Start a LocalRedis (optionally with a password and TLS) and a real worker on it; stop both after."""
    with LocalRedis(root=root / "redis", password=password, tls=tls, persistent=False) as local_redis:
        ca = str(local_redis.ca_file) if local_redis.ca_file else None
        config = StackConfig(
            aws_endpoint_url=sandbox.aws_endpoint_url,
            registry_host=sandbox.registry_host,
            build_root=APPS,
            redis_url=local_redis.url,
            redis_ssl_ca=ca,
            poll_interval_seconds=0.1,
            extra_env={
                "AWS_MAX_ATTEMPTS": "2",
                "DEPLOY_AGENT_HEALTH_INTERVAL_DEFAULT_SECONDS": "0.1",
                **(extra_env or {}),
            },
        )
        env = config.env()
        app = create_app(
            Settings(
                broker_url=env["DEPLOY_AGENT_BROKER_URL"],
                result_backend=env["DEPLOY_AGENT_RESULT_BACKEND"],
                redis_ssl_ca_certs=ca,
            ),
            set_as_current=False,
        )
        app.conf.result_backend_always_retry = False  # this Redis goes away at the end of the test
        app.conf.result_backend_transport_options = {
            **app.conf.result_backend_transport_options,
            "retry_policy": {"max_retries": 0},
        }
        with WorkerProcess(config, root / "worker.log", concurrency=2, name=name) as worker:
            worker.start()
            yield IsolatedStack(config, app, worker, local_redis)


class TestJsonOnly:
    def test_pickle_and_yaml_messages_are_refused_never_executed(
        self, sandbox: Sandbox, push_app: Any, tmp_path: Path
    ) -> None:
        """Pickle and YAML messages are refused unread: no marker file, worker alive, JSON still works."""
        markers = {name: tmp_path / f"pwned-{name}" for name in ("pickle-touch", "pickle-system", "yaml")}
        touch, shell = TouchOnUnpickle(markers["pickle-touch"]), ShellOnUnpickle(markers["pickle-system"])
        pickled_touch = pickle.dumps(((), {"request": touch}, EMPTY_EMBED))
        pickled_shell = pickle.dumps(((), {"request": shell}, EMPTY_EMBED))
        yaml_body = (
            "- []\n"
            f"- request: !!python/object/apply:os.system ['touch {markers['yaml']}']\n"
            "- {callbacks: null, errbacks: null, chain: null, chord: null}\n"
        ).encode()
        # Sanity: the pickle really does create its marker when loaded (then the file is removed).
        probe = tmp_path / "probe"
        pickle.loads(pickle.dumps(TouchOnUnpickle(probe)))  # noqa: S301 - proving the payload is live
        assert probe.exists()
        probe.unlink()
        cluster, service = "sec", unique("json")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        new_image = push_app("v2")

        with isolated_stack(sandbox, tmp_path / "stack", "json") as stack:
            app, worker = stack.app, stack.worker
            sent = [
                publish_raw(app, pickled_touch, "application/x-python-serialize", "binary"),
                publish_raw(app, pickled_shell, "application/x-python-serialize", "binary"),
                publish_raw(app, yaml_body, "application/x-yaml", "utf-8"),
            ]
            # The worker has taken (and refused) all three before the valid one goes in.
            queue = stack.redis.client(stack.config.broker_db)
            deadline = time.monotonic() + 30
            while queue.llen(app.conf.task_default_queue) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = queue.llen(app.conf.task_default_queue)
            result = app.send_task(
                "deploy_agent.deploy", kwargs={"request": prebuilt_release(svc, cluster, service, new_image)}
            ).get(timeout=120)
            states = {task_id: app.AsyncResult(task_id).state for task_id in sent}
            alive = is_alive(worker.pid)
            log = worker.log_path.read_text(errors="replace")

        refusals = sum(
            f"invalid task message: Refusing to deserialize untrusted content of type {kind}" in line
            for line in log.splitlines()
            for kind in ("pickle", "yaml")
        )
        created = [name for name, marker in markers.items() if marker.exists()]
        print(f"\nevil messages sent={len(sent)} left in queue={left} markers created={created}")
        print(f"refusal lines in worker log={refusals}; evil tasks' states={sorted(states.values())}")
        print(f"worker alive={alive}; valid deployment afterwards={result['outcome']}")
        assert left == 0, "the worker never took the pickle/yaml messages off the queue"
        assert created == [], "a pickle/yaml payload was executed"
        assert refusals == len(sent), log[-3000:]
        assert all(state != "SUCCESS" for state in states.values()), states
        assert alive
        assert result["outcome"] == "succeeded", result
        assert served_version(svc) == "v2"


def _forms(value: str) -> dict[str, str]:
    """Return the ways a planted value could be written out: raw, JSON-escaped, base64, URL-encoded."""
    raw = value.encode()
    forms = {
        "raw": value,
        "json": json.dumps(value)[1:-1],
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "url": quote(value, safe=""),
        "url-plus": quote(value, safe="").replace("%20", "+"),
    }
    return {name: form for name, form in forms.items() if form}


def _dump_redis(client: redis.Redis) -> str:
    """Return every key and value of a Redis database as text (every type; unknown types fail)."""
    parts: list[str] = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        if kind == "string":
            values: list[bytes] = [client.get(key) or b""]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = [b for kv in client.hgetall(key).items() for b in kv]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [b for _id, entry in client.xrange(key, "-", "+") for kv in entry.items() for b in kv]
        elif kind == "none":  # expired between SCAN and TYPE
            values = []
        else:
            raise AssertionError(f"{key!r} has a type the scan cannot read: {kind}")
        parts.append(key.decode(errors="replace"))
        for value in values:
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            parts.extend([text, *_decoded_bodies(text)])
    return "\n".join(parts)


def _decoded_bodies(text: str) -> list[str]:
    """Return the base64 message bodies inside a kombu envelope (a secret inside one is not aligned
    with the secret's own base64, so the envelope's text alone would hide it)."""
    try:
        envelope = json.loads(text)
    except ValueError:
        return []
    found: list[str] = []
    stack: list[Any] = [envelope]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            body = item.get("body")
            encoding = item.get("body_encoding") or (item.get("properties") or {}).get("body_encoding")
            if isinstance(body, str) and encoding == "base64":
                found.append(base64.b64decode(body).decode(errors="replace"))
            stack.extend(item.values())
    return found


def _dump_every_database(server: LocalRedis) -> dict[int, str]:
    """Return ``_dump_redis`` of every database the server has (0..15 by default)."""
    admin = server.client(0)
    count = int(admin.config_get("databases")["databases"])
    return {db: _dump_redis(server.client(db)) for db in range(count)}


class PubSubTap:
    """Every message published on any channel of a Redis server while it runs (PSUBSCRIBE *)."""

    def __init__(self, server: LocalRedis) -> None:
        self._pubsub = server.client(0).pubsub()
        self._pubsub.psubscribe("*")
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PubSubTap:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._pubsub.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.5)
            if message and message["type"] == "pmessage":
                data = message["data"]
                channel = message["channel"]
                text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
                self.messages.append(f"{channel.decode(errors='replace')} {text}")
                self.messages.extend(_decoded_bodies(text))


class TestSecretsNeverInOutput:
    def test_planted_secrets_appear_nowhere(self, sandbox: Sandbox, push_app: Any, tmp_path: Path) -> None:
        """Secret value, AWS key, ECR token, Redis password: 0 hits in logs, results, events, metrics."""
        tag = uuid.uuid4().hex[:10]
        ecr_password = f"{ACCOUNT}-auth-token"  # moto's registry password
        planted = {
            "secrets_manager_value": f"SMv4lue-{tag}-do-not-log",
            "aws_secret_access_key": f"AwsS3cretKey/{tag}+Planted/xyzXYZ0123456789",
            "ecr_password": ecr_password,
            "ecr_token": base64.b64encode(f"AWS:{ecr_password}".encode()).decode(),
            "redis_password": f"R3dis+pw/{tag}@:?#&=",
            # planted in the message itself: a container's environment and an allowed build arg
            "environment_value": f"EnvV4lue-{tag}-db-url-with-pw",
            "build_arg_value": f"BuildArgV4lue-{tag}-note",
        }
        secret_arn = boto3.client("secretsmanager").create_secret(
            Name=unique("sec-db"), SecretString=planted["secrets_manager_value"]
        )["ARN"]
        cluster, service = "sec", unique("plant")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        metrics_port = free_port()

        extra_env = {
            "AWS_SECRET_ACCESS_KEY": planted["aws_secret_access_key"],
            "DEPLOY_AGENT_METRICS_PORT": str(metrics_port),
        }
        with isolated_stack(
            sandbox, tmp_path, "secrets", password=planted["redis_password"], tls=True, extra_env=extra_env
        ) as stack:
            assert stack.config.redis_url.startswith("rediss://:"), "the worker talks TLS with a password"
            results = {}
            with PubSubTap(stack.redis) as tap:
                for version, mode in (("v2", "ok"), ("v3", "crash")):
                    request = build_request(svc, cluster, service, version, mode=mode)
                    request["build"]["build_args"]["BUILD_NOTE"] = planted["build_arg_value"]
                    request["task_definition"] = _task_definition(
                        service, secret_arn, planted["environment_value"]
                    )
                    request["container_name"] = "app"
                    pending = stack.app.send_task("deploy_agent.deploy", kwargs={"request": request})
                    results[mode] = pending.get(timeout=240)
                    del pending  # its __del__ talks to the backend: while that Redis still runs
            statuses = [
                subprocess.run(
                    [sys.executable, "-m", "deploy_agent.cli", "status", r["deployment_id"], "--json"],
                    env={**os.environ, **stack.config.env()},
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=True,
                )
                for r in results.values()
            ]
            scrape = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            state_db = stack.redis.client(stack.config.state_db)
            events = [
                e.decode(errors="replace")
                for key in state_db.scan_iter(match="deploy-agent:events:*")
                for e in state_db.lrange(key, 0, -1)
            ]
            state_dump = _dump_redis(state_db)
            result_dump = _dump_redis(stack.redis.client(stack.config.result_db))
            databases = _dump_every_database(stack.redis)
            log_path = stack.worker.log_path
        log = log_path.read_text(errors="replace")

        outputs = {
            "worker log": log,
            "results": json.dumps(results),
            "result backend": result_dump,
            "events": "\n".join(events),
            "state db": state_dump,
            "status --json": "\n".join(s.stdout + s.stderr for s in statuses),
            "metrics": scrape,
            "published (pub/sub)": "\n".join(tap.messages),
            **{f"redis db {db}": dump for db, dump in databases.items()},
        }
        found = {
            (name, form, where): text.count(needle)
            for name, value in planted.items()
            for form, needle in _forms(value).items()
            for where, text in outputs.items()
            if needle in text
        }
        outcomes = {mode: r["outcome"] for mode, r in results.items()}
        sizes = {where: len(text) for where, text in outputs.items()}
        print(f"\noutcomes: {outcomes}; events: {len(events)}; searched (chars): {sizes}")
        print(f"planted={len(planted)} values x {len(_forms('x'))} forms; found={sum(found.values())}")
        for key, count in sorted(found.items()):
            print(f"  FOUND {key}: {count}")

        # The deployments really ran through the password + TLS Redis, and really used the planted parts.
        assert results["ok"]["outcome"] == "succeeded", results["ok"]
        assert results["crash"]["outcome"] == "rolled_back", results["crash"]
        assert events, "progress events were recorded in the TLS Redis"
        assert secret_arn in outputs["state db"], "the search reads the stored request (which names the ARN)"
        assert len(databases) >= 16, "every database of the server was scanned"
        assert "BUILD_NOTE" in outputs["state db"], "the stored request keeps the build arg's name"
        assert "DB_URL" in outputs["state db"], "the stored request keeps the environment's names"
        channels = {m.split(" ", 1)[0] for m in tap.messages}
        assert not [c for c in channels if "/task." in c], f"task events were published: {channels}"
        image = stack_image_env(td_arn=results["ok"]["task_definition_arn"])
        assert image == planted["environment_value"], "the planted environment value reached ECS"
        assert "deploy_agent_deployments" in scrape
        td = boto3.client("ecs").describe_task_definition(taskDefinition=results["ok"]["task_definition_arn"])
        assert td["taskDefinition"]["containerDefinitions"][0]["secrets"] == [
            {"name": "DB_PASSWORD", "valueFrom": secret_arn}
        ]
        assert all(json.loads(s.stdout)["result"]["outcome"] for s in statuses)
        assert found == {}


def stack_image_env(td_arn: str) -> str:
    """The DB_URL value of the registered task definition (the deployment really used it)."""
    td = boto3.client("ecs").describe_task_definition(taskDefinition=td_arn)["taskDefinition"]
    env = {e["name"]: e["value"] for e in td["containerDefinitions"][0].get("environment") or []}
    return env["DB_URL"]


def _task_definition(service: str, secret_arn: str, env_value: str) -> dict[str, Any]:
    return {
        "family": service,
        "cpu": "256",
        "memory": "512",
        "network_mode": "awsvpc",
        "requires_compatibilities": ["FARGATE"],
        "container_definitions": [
            {
                "name": "app",
                "essential": True,
                "port_mappings": [{"container_port": 8080}],
                "environment": {"GREETING": "hello", "DB_URL": env_value},
                "secrets": {"DB_PASSWORD": secret_arn},
            }
        ],
    }
