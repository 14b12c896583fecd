"""What the state Redis keeps of a message, and per-region keys, on a real Redis of this module's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from deploy_agent.adapters.redis_client import _redis_pool, redis_client
from deploy_agent.adapters.redis_locks import ServiceLock
from deploy_agent.adapters.redis_store import DeploymentStore, ReleaseLedger, WaitingLine
from deploy_agent.core.outcome import Phase
from deploy_agent.core.scrub import DROPPED, has_environment_values, scrub_state
from deploy_agent.core.state import PipelineState, utcnow
from deploy_agent.settings import Settings
from deploy_agent.tasks.runtime import Runtime
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

ENV_SECRET = "env-s3cret-value-planted"
ARG_VALUE = "build-arg-value-planted"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    with LocalRedis(root=tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def client(server: LocalRedis) -> Iterator[redis.Redis]:
    conn = server.client(0)
    conn.flushdb()
    yield conn
    conn.close()


def request() -> dict[str, Any]:
    return {
        "cluster_name": "c1",
        "service_name": "web",
        "build": {"context": "app", "build_args": {"VERSION": ARG_VALUE}},
        "image": {"repository": "app"},
        "task_definition": {
            "family": "web",
            "container_definitions": [
                {"name": "app", "environment": {"DB_URL": ENV_SECRET, "MODE": "prod"}},
                {"name": "sidecar", "environment": {"SIDE": ENV_SECRET}},
            ],
        },
    }


def state(**fields: Any) -> dict[str, Any]:
    now = utcnow()
    base = PipelineState(
        deployment_id="dep-1",
        request=request(),
        strategy="rolling",
        cluster="c1",
        service="web",
        region="us-east-1",
        started_at=now,
        deadline=now + timedelta(minutes=5),
    )
    return base.model_copy(update=fields).model_dump(mode="json")


def raw(client: redis.Redis) -> str:
    value = client.get("deploy-agent:deployment:dep-1")
    assert isinstance(value, bytes)
    return value.decode()


class TestStoredStateDropsValues:
    def test_accepted_state_keeps_values_the_build_and_register_need(self, client: redis.Redis) -> None:
        """Until the image is built and the task definition registered, the values are kept."""
        store = DeploymentStore(client, ttl_seconds=60)
        assert store.create("dep-1", state())
        assert ENV_SECRET in raw(client)
        assert ARG_VALUE in raw(client)

    def test_build_args_dropped_once_built(self, client: redis.Redis) -> None:
        """Once the image is built, build-arg values are gone (names kept); environment still there."""
        store = DeploymentStore(client, ttl_seconds=60)
        store.save("dep-1", state(phase=Phase.BUILT, local_image="sha256:abc"))
        loaded = store.load("dep-1")
        assert loaded is not None
        assert loaded["request"]["build"]["build_args"] == {"VERSION": DROPPED}
        assert ARG_VALUE not in raw(client)
        assert ENV_SECRET in raw(client)

    def test_environment_dropped_once_registered(self, client: redis.Redis) -> None:
        """Registered: every container's environment values are dropped, names kept."""
        store = DeploymentStore(client, ttl_seconds=60)
        registered = state(phase=Phase.REGISTERED, image_uri="r/app@sha256:1", task_definition_arn="arn:td:1")
        store.save("dep-1", registered)
        loaded = store.load("dep-1")
        assert loaded is not None
        containers = loaded["request"]["task_definition"]["container_definitions"]
        assert [c["environment"] for c in containers] == [{"DB_URL": "", "MODE": ""}, {"SIDE": ""}]
        assert ENV_SECRET not in raw(client)
        assert ARG_VALUE not in raw(client)
        # what is stored still reads as a state and a valid request shape
        assert PipelineState.model_validate(loaded).task_definition_arn == "arn:td:1"

    def test_finished_state_never_holds_values(self, client: redis.Redis) -> None:
        """A deployment that ended before registering (a failed build) keeps no values either."""
        store = DeploymentStore(client, ttl_seconds=60)
        store.create("dep-1", state())
        store.save("dep-1", state(phase=Phase.DONE, outcome="failed"))
        assert ENV_SECRET not in raw(client)
        assert ARG_VALUE not in raw(client)

    def test_the_callers_state_is_left_alone(self) -> None:
        """Scrubbing copies: the running stage's own state keeps its values."""
        mine = state(phase=Phase.DONE)
        scrub_state(mine)
        assert mine["request"]["build"]["build_args"] == {"VERSION": ARG_VALUE}

    def test_aws_list_form_is_dropped_too(self) -> None:
        """An environment in AWS's [{name, value}] form loses its values too."""
        value = state(phase=Phase.DONE)
        value["request"]["task_definition"]["container_definitions"][0]["environment"] = [
            {"name": "DB_URL", "value": ENV_SECRET}
        ]
        assert ENV_SECRET not in json.dumps(scrub_state(value))


class TestHasEnvironmentValues:
    @pytest.mark.parametrize(
        ("containers", "has"),
        [
            ([{"name": "app"}], False),
            ([{"name": "app", "environment": []}], False),
            ([{"name": "app"}, {"name": "db", "environment": [{"name": "URL", "value": ENV_SECRET}]}], True),
            ([{"name": "app", "environment": [{"name": "EMPTY", "value": ""}]}], False),
        ],
        ids=["no environment", "an empty one", "a second container's value", "an empty value"],
    )
    def test_values_are_found_in_any_container(self, containers: list[dict[str, Any]], has: bool) -> None:
        """A value in any container counts; an empty one does not; the kwargs are not changed."""
        kwargs = {"family": "web", "containerDefinitions": containers}
        before = json.dumps(kwargs)
        assert has_environment_values(kwargs) is has
        assert json.dumps(kwargs) == before


class TestReleaseLedger:
    def test_definitions_kept_without_environment_values(self, client: redis.Redis) -> None:
        """The ledger never stores environment values; such a definition is not re-registered."""
        ledger = ReleaseLedger(client, keep=5, region="us-east-1")
        kwargs = {
            "family": "web",
            "containerDefinitions": [{"name": "app", "environment": [{"name": "K", "value": ENV_SECRET}]}],
        }
        ledger.record("c1", "web", {"task_definition_arn": "arn:td:1", "register_kwargs": kwargs})
        ledger.record("c1", "web", {"task_definition_arn": "arn:td:2", "register_kwargs": {"family": "web"}})
        dump = json.dumps([client.lrange(k, 0, -1) for k in client.keys("*")], default=bytes.decode)
        assert ENV_SECRET not in dump
        assert ledger.definition_of("c1", "web", "arn:td:1") is None
        assert ledger.definition_of("c1", "web", "arn:td:2") == {"family": "web"}

    def test_the_newest_releases_are_kept_newest_first(self, client: redis.Redis) -> None:
        """Past ``keep`` releases the oldest goes."""
        ledger = ReleaseLedger(client, keep=2, region="us-east-1")
        for n in range(3):
            ledger.record("c1", "web", {"task_definition_arn": f"arn:td:{n}"})
        assert [r["task_definition_arn"] for r in ledger.releases("c1", "web")] == ["arn:td:2", "arn:td:1"]

    def test_ledgers_are_per_region(self, client: redis.Redis) -> None:
        """Same-named services in two regions have two ledgers (and two registered lists)."""
        east, west = ReleaseLedger(client, 5, "us-east-1"), ReleaseLedger(client, 5, "eu-west-1")
        east.record("c1", "web", {"task_definition_arn": "arn:east"})
        east.remember_registered("web", "arn:east")
        assert [r["task_definition_arn"] for r in east.releases("c1", "web")] == ["arn:east"]
        assert west.releases("c1", "web") == []
        assert west.registered("web") == []


class TestRegionInKeys:
    def test_same_service_in_two_regions_locks_separately(self, client: redis.Redis) -> None:
        """A lock on c1/web in us-east-1 does not block c1/web in eu-west-1; same region does."""
        rt = Runtime(settings=Settings(lock_ttl_seconds=30), redis=client)
        assert rt.lock("c1", "web", "us-east-1").acquire("A")
        assert rt.lock("c1", "web", "eu-west-1").acquire("B")
        assert not rt.lock("c1", "web", "us-east-1").acquire("C")
        assert rt.lock("c1", "web", "us-east-1").holder() == "A"
        assert client.get("deploy-agent:lock:eu-west-1:c1/web") == b"B"

    def test_lock_key_names_the_region(self, client: redis.Redis) -> None:
        lock = ServiceLock(client, "c1", "web", 30, "ap-south-1")
        assert (lock.key, lock.last_key) == (
            "deploy-agent:lock:ap-south-1:c1/web",
            "deploy-agent:lock-last:ap-south-1:c1/web",
        )

    def test_waiting_lines_are_per_region(self, client: redis.Redis) -> None:
        east, west = (
            WaitingLine(client, "c1", "web", "us-east-1"),
            WaitingLine(client, "c1", "web", "eu-west-1"),
        )
        east.join("old", 1.0)
        west.join("new", 2.0)
        assert (east.newest(), west.newest()) == ("old", "new")

    def test_joining_a_line_answers_who_is_newest_and_keeps_the_first_time(self, client: redis.Redis) -> None:
        line = WaitingLine(client, "c1", "api", "us-east-1")
        assert line.join("a", 5.0) == "a"
        assert line.join("b", 3.0) == "a"  # accepted earlier: not the newest
        assert line.join("c", 9.0) == "c"
        assert line.join("a", 10.0) == "c"  # a redelivered entry keeps its first time
        assert 0 < int(client.ttl(line.key)) <= 7 * 24 * 3600


class TestRedisTls:
    def test_state_redis_checks_the_host_name(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        """rediss:// with the certificate's name connects; another name for the same address is refused."""
        with LocalRedis(root=tmp_path_factory.mktemp("tls"), tls=True, persistent=False) as tls:
            ca = str(tls.ca_file)
            good = redis_client(f"rediss://localhost:{tls.port}/0", ca)
            assert good.ping()
            pool = _redis_pool(f"rediss://127.1:{tls.port}/0", ca)
            assert pool.connection_kwargs["ssl_check_hostname"] is True
            # the pool's own connection settings, without its minute of retries
            once = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0), "retry_on_error": []}
            with pytest.raises(redis.ConnectionError) as refused:
                redis.SSLConnection(**once).connect()
            assert "hostname" in str(refused.value).lower(), refused.value
            unchecked = {**once, "ssl_check_hostname": False}
            redis.SSLConnection(**unchecked).connect()  # the same address is fine without the check
