"""``deploy-agent run``: the pipeline in one process, where nothing but its own polls wakes a wait."""

from __future__ import annotations

import redis

from deploy_agent.settings import Settings
from deploy_agent.tasks.local import without_wakes
from deploy_agent.tasks.runtime import Runtime
from deploy_agent.tasks.wiring import tunables_of


def test_a_local_run_polls_on_its_own_schedule_whatever_the_worker_settings_say() -> None:
    """A worker with the cluster watcher (the default) or ECS's events waits the safety poll between
    looks; the same settings in ``run`` poll at the slow interval, as no news ever comes here."""
    for settings in (
        Settings(watch_interval_seconds=1.0),
        Settings(events_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/ecs-events"),
    ):
        worker = Runtime(settings=settings, redis=redis.Redis())
        assert tunables_of(worker).poll.safety == settings.event_safety_poll_seconds
        local = Runtime(settings=without_wakes(settings), redis=redis.Redis())
        assert tunables_of(local).poll.safety is None
        assert tunables_of(local).poll.slow == settings.poll_interval_seconds
