"""A worker takes a started deployment's next stages before new deployments (real Redis, real worker)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from deploy_agent.settings import Settings
from deploy_agent.worker.app import create_app
from ecs_sandbox.environment import Sandbox
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.conftest import APPS, REDIS_URL

pytestmark = pytest.mark.integration

DBS = {"broker_db": 7, "result_db": 8, "state_db": 9}


def _received(log: Path) -> list[str]:
    """The task names the worker received, in order (Celery's "Task NAME[ID] received" lines)."""
    names = []
    for line in log.read_text().splitlines():
        try:
            message = str(json.loads(line).get("message", ""))
        except ValueError:
            continue
        if message.startswith("Task ") and message.endswith("received"):
            names.append(message.removeprefix("Task ").split("[", 1)[0])
    return names


@pytest.mark.parametrize("hash_seed", ["0", "2"])
def test_stages_are_taken_before_every_queued_entry(sandbox: Sandbox, tmp_path: Path, hash_seed: str) -> None:
    """With three new deployments queued before two stages, a one-process worker takes both stages
    first: not in turns between the two queues (kombu's default), not in publishing order (one queue),
    and whatever the worker's hash seed (kombu holds the queues in a set: with seed 0 a set of these
    two names lists ``deploy`` first, with seed 2 ``deploy.stages``)."""
    for db in DBS.values():
        redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()
    settings = Settings(
        broker_url=f"{REDIS_URL}/{DBS['broker_db']}", result_backend=f"{REDIS_URL}/{DBS['result_db']}"
    )
    app = create_app(settings, set_as_current=False)
    entries = [
        app.send_task("deploy_agent.deploy", kwargs={"request": {"cluster_name": f"c{i}"}}) for i in range(3)
    ]
    # Stages of deployments the agenda does not know: each is dropped as stale when it begins.
    for i in range(2):
        app.send_task("deploy_agent.stage.deploy", args=[f"gone-{i}"], kwargs={"token": "stale"})
    broker = redis.Redis.from_url(f"{REDIS_URL}/{DBS['broker_db']}")
    assert broker.llen(settings.queue) == 3
    assert broker.llen(settings.stage_queue) == 2

    config = StackConfig(
        aws_endpoint_url=sandbox.aws_endpoint_url,
        registry_host=sandbox.registry_host,
        build_root=APPS,
        redis_url=REDIS_URL,
        extra_env={"AWS_MAX_ATTEMPTS": "2", "PYTHONHASHSEED": hash_seed},
        **DBS,
    )
    log = tmp_path / "worker.log"
    with WorkerProcess(config, log, concurrency=1, name="order").start():
        for entry in entries:  # invalid messages: each ends rejected, touching nothing on AWS
            assert entry.get(timeout=60)["outcome"] == "rejected"
        deadline = time.monotonic() + 30
        while len(_received(log)) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)

    assert _received(log) == ["deploy_agent.stage.deploy"] * 2 + ["deploy_agent.deploy"] * 3
