"""``store_final_result`` against a real Redis: what Celery's clients read, in one command."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from deploy_agent.tasks.results import store_final_result
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

RESULT = {"deployment_id": "d1", "outcome": "succeeded", "stages": [{"name": "deploy"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    with LocalRedis(root=tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def app(server: LocalRedis) -> Iterator[Celery]:
    server.client(1).flushdb()
    celery = Celery("results-test", broker="memory://", backend=f"{server.url}/1")
    celery.conf.update(result_serializer="json", accept_content=["json"], result_expires=600)
    yield celery
    celery.close()


class TestStoreFinalResult:
    def test_a_client_reads_it_as_celery_would_have_stored_it(self, app: Celery, server: LocalRedis) -> None:
        """``AsyncResult`` sees SUCCESS and the result; the key keeps Celery's expiry."""
        store_final_result(app.backend, "entry-1", RESULT)
        found = app.AsyncResult("entry-1")
        assert (found.state, found.get(timeout=5)) == ("SUCCESS", RESULT)
        key = app.backend.get_key_for_task("entry-1")
        assert 590 < int(server.client(1).ttl(key)) <= 600  # type: ignore[arg-type]

    def test_a_client_already_waiting_is_told_at_once(self, app: Celery) -> None:
        """A publisher blocked in ``get()`` before the result came (subscribed to its key) gets it."""
        got: list[Any] = []
        waiting = app.AsyncResult("entry-2")
        waiter = threading.Thread(target=lambda: got.append(waiting.get(timeout=10)))
        waiter.start()
        threading.Event().wait(0.5)  # the waiter has subscribed and read nothing yet
        store_final_result(app.backend, "entry-2", RESULT)
        waiter.join(timeout=5)
        assert got == [RESULT]

    def test_it_sends_one_command(self, app: Celery, server: LocalRedis) -> None:
        """Celery's ``store_result`` sends five (GET, MULTI, SETEX, PUBLISH, EXEC); this, one EVAL."""
        stats = server.client(0)
        store_final_result(app.backend, "warm-up", RESULT)  # the backend's connection is made
        stats.config_resetstat()
        store_final_result(app.backend, "entry-3", RESULT)
        info = stats.info("commandstats")
        ours = ("cmdstat_config", "cmdstat_info")  # this test's own
        sent = {name: int(v["calls"]) for name, v in info.items() if not name.startswith(ours)}
        # SET and PUBLISH: the script's own
        assert sent == {"cmdstat_eval": 1, "cmdstat_set": 1, "cmdstat_publish": 1}

    def test_another_backend_gets_store_result(self) -> None:
        """A result backend other than Redis is written through Celery's own ``store_result``."""
        app = Celery("results-test", broker="memory://", backend="cache+memory://")
        store_final_result(app.backend, "entry-4", RESULT)
        assert app.AsyncResult("entry-4").get(timeout=5) == RESULT
