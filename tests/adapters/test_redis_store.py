"""``DeploymentStore``'s event history against a real Redis: what it keeps, for how long, at what cost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

from deploy_agent.adapters.redis_store import DeploymentStore, events_with_next_save
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

KEY = "deploy-agent:events:dep-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    with LocalRedis(root=tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def client(server: LocalRedis) -> Iterator[redis.Redis]:
    conn = server.client()
    conn.flushdb()
    yield conn
    conn.close()  # type: ignore[no-untyped-call]  # untyped in redis-py


def commands(client: redis.Redis) -> int:
    """Return the commands Redis ran since its statistics were reset, this reading left out."""
    stats = cast(dict[str, dict[str, Any]], client.info("commandstats"))
    own = ("cmdstat_info", "cmdstat_config|resetstat")
    return sum(int(v["calls"]) for name, v in stats.items() if name not in own)


def ttl(client: redis.Redis, key: str) -> int:
    return int(cast(int, client.ttl(key)))


class TestEventHistory:
    def test_keeps_the_newest_events_in_order(self, client: redis.Redis) -> None:
        """Past the history's length the oldest events go; the rest stay oldest first."""
        store = DeploymentStore(client, ttl_seconds=60, event_history=3)
        for i in range(5):
            store.append_event("dep-1", {"event": "step", "n": i})
        assert [e["n"] for e in store.events("dep-1")] == [2, 3, 4]

    def test_the_history_expires_and_the_result_renews_it(self, client: redis.Redis) -> None:
        """The first event sets the expiry; storing the result gives the history the result's own."""
        store = DeploymentStore(client, ttl_seconds=60)
        store.append_event("dep-1", {"event": "accepted"})
        assert 0 < ttl(client, KEY) <= 60
        client.expire(KEY, 5)  # as if the deployment had run for most of the TTL
        store.save_final("dep-1", {"outcome": "succeeded"}, {"phase": "done"}, [{"event": "finished"}])
        assert ttl(client, KEY) > 50
        assert ttl(client, "deploy-agent:result:dep-1") > 50

    def test_the_result_its_state_and_the_last_event_are_one_round_trip(self, client: redis.Redis) -> None:
        """save_final writes all three with one script: nobody reads a result its state or history lacks."""
        store = DeploymentStore(client, ttl_seconds=60, event_history=2)
        for i in range(2):
            store.append_event("dep-1", {"event": "step", "n": i})
        client.config_resetstat()
        store.save_final("dep-1", {"outcome": "succeeded"}, {"phase": "done"}, [{"event": "finished"}])
        ran = {name: n for name, n in calls(client).items() if name not in ("info", "config|resetstat")}
        assert ran == {"eval": 1, "set": 2, "rpush": 1, "ltrim": 1, "expire": 1}
        assert store.result("dep-1") == {"outcome": "succeeded"}
        assert store.load("dep-1") == {"phase": "done"}
        assert [e.get("n", e["event"]) for e in store.events("dep-1")] == [1, "finished"]

    def test_an_event_costs_one_command_while_the_history_is_short(self, client: redis.Redis) -> None:
        """Every event after the first is a single RPUSH until the history is full."""
        store = DeploymentStore(client, ttl_seconds=60, event_history=100)
        store.append_event("dep-1", {"event": "accepted"})
        client.config_resetstat()
        for i in range(20):
            store.append_event("dep-1", {"event": "step", "n": i})
        assert commands(client) == 20


def calls(client: redis.Redis) -> dict[str, int]:
    """Return the calls of each command since the statistics were reset (script-inner ones too)."""
    stats = cast(dict[str, dict[str, Any]], client.info("commandstats"))
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


class TestEventsWithTheNextSave:
    def test_events_go_with_the_save_that_follows_in_one_round_trip(self, client: redis.Redis) -> None:
        """A stage's end: its event and the state it leaves are written by one script, in order."""
        store = DeploymentStore(client, ttl_seconds=60, event_history=100)
        store.append_event("dep-1", {"event": "stage_started"})
        client.config_resetstat()
        with events_with_next_save():
            store.append_event("dep-1", {"event": "stage_finished", "n": 1})
            store.append_event("dep-1", {"event": "note", "n": 2})
            assert [e["event"] for e in store.events("dep-1")] == ["stage_started"]  # held
            DeploymentStore(client, ttl_seconds=60).save("dep-1", {"phase": "running"})
        ran = calls(client)
        assert ran["eval"] == 1
        assert (ran["set"], ran["rpush"]) == (1, 1)
        assert "expire" not in ran  # the history had its expiry from its first event
        assert [e["event"] for e in store.events("dep-1")] == ["stage_started", "stage_finished", "note"]
        assert store.load("dep-1") == {"phase": "running"}

    def test_events_no_save_took_are_appended_when_the_block_ends(self, client: redis.Redis) -> None:
        store = DeploymentStore(client, ttl_seconds=60, event_history=3)
        with events_with_next_save():
            for i in range(5):
                store.append_event("dep-1", {"event": "step", "n": i})
            assert store.events("dep-1") == []
        assert [e["n"] for e in store.events("dep-1")] == [2, 3, 4]
        assert 0 < ttl(client, KEY) <= 60

    def test_a_first_save_with_events_sets_the_history_expiry_and_trims_it(self, client: redis.Redis) -> None:
        store = DeploymentStore(client, ttl_seconds=60, event_history=2)
        with events_with_next_save():
            for i in range(3):
                store.append_event("dep-1", {"event": "step", "n": i})
            store.save("dep-1", {"phase": "running"})
        assert [e["n"] for e in store.events("dep-1")] == [1, 2]
        assert 0 < ttl(client, KEY) <= 60
        store.append_event("dep-2", {"event": "elsewhere"})  # outside the block: at once
        assert len(store.events("dep-2")) == 1


class TestCreate:
    def test_a_new_deployment_is_recorded_with_its_first_events_in_one_round_trip(
        self, client: redis.Redis
    ) -> None:
        """create() writes the state, the recent list's entry and the first event in one script."""
        store = DeploymentStore(client, ttl_seconds=60)
        client.config_resetstat()
        stored = store.create("dep-1", {"phase": "accepted"}, [{"event": "accepted"}])
        assert stored == {"phase": "accepted"}
        ran = {name: n for name, n in calls(client).items() if name not in ("info", "config|resetstat")}
        assert ran == {
            "eval": 1,
            "set": 1,
            "zadd": 1,
            "rpush": 1,
            "expire": 1,
        }  # the script's, nothing beside
        assert [e["event"] for e in store.events("dep-1")] == ["accepted"]
        assert 0 < ttl(client, KEY) <= 60
        assert store.recent() == ["dep-1"]

    def test_an_id_seen_before_writes_nothing(self, client: redis.Redis) -> None:
        """A duplicate's create leaves the first deployment's state and history as they were."""
        store = DeploymentStore(client, ttl_seconds=60)
        store.create("dep-1", {"phase": "accepted", "n": 1}, [{"event": "accepted"}])
        assert store.create("dep-1", {"phase": "accepted", "n": 2}, [{"event": "accepted", "n": 2}]) is None
        assert store.load("dep-1") == {"phase": "accepted", "n": 1}
        assert store.events("dep-1") == [{"event": "accepted"}]
