"""The event consumer wakes the deployment holding an event's service and deletes every message."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from deploy_agent.adapters.agenda import News, Wake
from deploy_agent.adapters.ecs_events import Received
from deploy_agent.core.errors import AwsError
from deploy_agent.worker.event_consumer import EventConsumer
from tests.support import ManualClock, wait_until

SERVICE_ARN = "arn:aws:ecs:us-east-1:123456789012:service/app/web"


def _completed(service_arn: str = SERVICE_ARN, name: str = "SERVICE_DEPLOYMENT_COMPLETED") -> str:
    return json.dumps(
        {
            "source": "aws.ecs",
            "detail-type": "ECS Deployment State Change",
            "region": "us-east-1",
            "resources": [service_arn],
            "detail": {"eventType": "INFO", "eventName": name, "deploymentId": "x"},
        }
    )


def _pending_task(status: str = "PENDING") -> str:
    return json.dumps(
        {
            "source": "aws.ecs",
            "detail-type": "ECS Task State Change",
            "region": "us-east-1",
            "resources": ["arn:aws:ecs:us-east-1:123456789012:task/app/1"],
            "detail": {
                "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/app",
                "group": "service:web",
                "lastStatus": status,
            },
        }
    )


class FakeQueue:
    def __init__(self, *batches: list[str], fail_first: bool = False) -> None:
        self.batches = [[Received(str(i), f"r{i}", body) for i, body in enumerate(b)] for b in batches]
        self.deleted: list[str] = []
        self.delete_calls = 0
        self.waits: list[int] = []
        self.fail_first = fail_first

    def receive(self, wait_seconds: int) -> list[Received]:
        self.waits.append(wait_seconds)
        if self.fail_first:
            self.fail_first = False
            raise AwsError("sqs ReceiveMessage failed: Throttling", service="sqs", operation="ReceiveMessage")
        return self.batches.pop(0) if self.batches else []

    def delete(self, messages: list[Received]) -> int:
        assert len(messages) <= 10, "DeleteMessageBatch takes ten entries at most"
        self.deleted += [m.receipt_handle for m in messages]
        self.delete_calls += 1
        return 0


class Recorder:
    def __init__(
        self, holders: dict[tuple[str, str, str], str], waiting: bool = True, quiet_tasks: bool = False
    ) -> None:
        self.holders = holders
        self.waiting = waiting
        self.quiet_tasks = quiet_tasks  # the holder's stage waits only for service-level news
        self.woken: list[str] = []
        self.about_tasks: list[bool] = []
        self.started: list[str] = []
        self.deployments: list[str] = []
        self.stopped: list[str] = []
        self.batches: list[int] = []
        self.counted: list[tuple[str, str]] = []

    def consumer(self, queue: Any, delete_after: float = 0.0, clock: Any = None) -> EventConsumer:
        """Return a consumer of ``queue``; ``delete_after`` 0 deletes each batch at once."""
        return EventConsumer(
            queue,
            wake_holders=self.wake_holders,
            count=lambda detail_type, result: self.counted.append((detail_type, result)),
            wait_seconds=0,
            error_pause_seconds=0.01,
            delete_after_seconds=delete_after,
            **({"clock": clock} if clock is not None else {}),
        )

    def wake_holders(self, news: Sequence[News]) -> list[Wake | None]:
        self.batches.append(len(news))
        return [
            self.wake_holder(
                n.region, n.cluster, n.service, n.about_tasks, n.started, n.deployment, n.stopped_task
            )
            for n in news
        ]

    def wake_holder(
        self,
        region: str,
        cluster: str,
        service: str,
        about_tasks: bool,
        started: str = "",
        deployment: str = "",
        stopped_task: str = "",
    ) -> Wake | None:
        deployment_id = self.holders.get((region, cluster, service))
        if deployment_id is None:
            return None
        self.about_tasks.append(about_tasks)
        self.started.append(started)
        self.deployments.append(deployment)
        self.stopped.append(stopped_task)
        if about_tasks and self.quiet_tasks:
            return "ignored"
        self.woken.append(deployment_id)
        return "woken" if self.waiting else "running"


class TestConsumeOnce:
    def test_a_deployments_start_names_it_so_its_own_stage_can_tell(self) -> None:
        """IN_PROGRESS passes the deployment it started to the wake (its own UpdateService's start is
        no news to the stage that sent it); COMPLETED passes none."""
        queue = FakeQueue([_completed(name="SERVICE_DEPLOYMENT_IN_PROGRESS"), _completed()])
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"})
        recorder.consumer(queue).consume_once()
        assert recorder.started == ["x", ""]

    def test_a_deployment_s_end_names_it_so_a_wait_that_knows_its_verdict_can_tell(self) -> None:
        """FAILED and COMPLETED pass the deployment they end (a rollback's settling already knows
        ours failed); a task's news names none."""
        queue = FakeQueue(
            [_completed(name="SERVICE_DEPLOYMENT_FAILED"), _completed(), _pending_task("STOPPED")]
        )
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"})
        recorder.consumer(queue).consume_once()
        assert recorder.deployments == ["x", "x", ""]

    def test_a_batch_of_events_wakes_in_one_call(self) -> None:
        """The events of one receive that may change a verdict go to the agenda together (one round
        trip), in order; the malformed and the ignored are counted without it."""
        queue = FakeQueue([_completed(), "not json", _pending_task("PENDING"), _pending_task("STOPPED")])
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"})
        assert recorder.consumer(queue).consume_once() == 2
        assert recorder.batches == [2]
        assert recorder.about_tasks == [False, True]
        assert recorder.counted == [
            ("unknown", "malformed"),
            ("ECS Task State Change", "ignored"),
            ("ECS Deployment State Change", "woken"),
            ("ECS Task State Change", "woken"),
        ]

    def test_a_stopped_task_is_passed_on_for_the_holder_s_book(self) -> None:
        """STOPPED carries the task (for the result's diagnostics); RUNNING and a deployment's none."""
        queue = FakeQueue([_pending_task("STOPPED"), _pending_task("RUNNING"), _completed()])
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"}, quiet_tasks=True)
        recorder.consumer(queue).consume_once()
        assert [bool(s) for s in recorder.stopped] == [True, False, False]
        assert json.loads(recorder.stopped[0])["containers"] == []

    def test_tasks_failing_to_start_are_tasks_news(self) -> None:
        """SERVICE_TASK_START_IMPAIRED (a crash loop) does not wake a stage waiting for the verdict."""
        impaired = json.dumps(
            {
                "source": "aws.ecs",
                "detail-type": "ECS Service Action",
                "region": "us-east-1",
                "resources": [SERVICE_ARN],
                "detail": {
                    "eventType": "WARN",
                    "eventName": "SERVICE_TASK_START_IMPAIRED",
                    "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/app",
                },
            }
        )
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"}, quiet_tasks=True)
        assert recorder.consumer(FakeQueue([impaired])).consume_once() == 0
        assert recorder.about_tasks == [True]
        assert recorder.counted == [("ECS Service Action", "ignored")]

    def test_an_event_wakes_the_deployment_holding_its_service(self) -> None:
        """COMPLETED for app/web wakes the lock holder of us-east-1 app/web; the message is deleted."""
        queue = FakeQueue([_completed()])
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"})
        assert recorder.consumer(queue).consume_once() == 1
        assert recorder.woken == ["dep-1"]
        assert queue.deleted == ["r0"]
        assert recorder.counted == [("ECS Deployment State Change", "woken")]

    def test_a_running_stage_is_counted_as_running(self) -> None:
        """When the stage runs (wake returns False) the event is still used: it looks again at once."""
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"}, waiting=False)
        assert recorder.consumer(FakeQueue([_completed()])).consume_once() == 0
        assert recorder.counted == [("ECS Deployment State Change", "running")]

    def test_a_task_event_says_it_is_only_a_task_s_news(self) -> None:
        """A task that stopped wakes the holder as news about a task; a deployment's is not."""
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"})
        queue = FakeQueue([_pending_task("STOPPED"), _completed()])
        assert recorder.consumer(queue).consume_once() == 2
        assert recorder.about_tasks == [True, False]

    def test_a_stage_that_waits_for_service_news_is_not_woken_by_a_task(self) -> None:
        """The holder's stage follows a rolling deployment: a task's news is counted as ignored."""
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"}, quiet_tasks=True)
        queue = FakeQueue([_pending_task("RUNNING"), _completed()])
        assert recorder.consumer(queue).consume_once() == 1
        assert recorder.counted == [
            ("ECS Task State Change", "ignored"),
            ("ECS Deployment State Change", "woken"),
        ]

    def test_malformed_unrelated_and_unmatched_events_are_deleted_and_counted(self) -> None:
        """Nothing is woken, every message is deleted, each is counted by what became of it."""
        other = SERVICE_ARN.replace("/web", "/api")
        queue = FakeQueue(["{not json", _pending_task(), _completed(other)])
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"})
        assert recorder.consumer(queue).consume_once() == 0
        assert recorder.woken == []
        assert queue.deleted == ["r0", "r1", "r2"]
        assert recorder.counted == [
            ("unknown", "malformed"),
            ("ECS Task State Change", "ignored"),
            ("ECS Deployment State Change", "unmatched"),
        ]


class TestGatheredDeletes:
    def test_handled_messages_wait_for_one_delete(self) -> None:
        """Three receives of one event each within 5 s: one DeleteMessageBatch, when the oldest is 5 s old."""
        queue = FakeQueue([_completed()], [_completed()], [_completed()], [])
        clock = ManualClock(100.0)
        consumer = Recorder({("us-east-1", "app", "web"): "dep-1"}).consumer(queue, 5.0, clock)
        for _ in range(3):
            consumer.consume_once()
            clock.now += 1.5
        assert queue.deleted == []
        clock.now += 1.0  # the oldest came 5.5 s ago
        consumer.consume_once()
        assert queue.deleted == ["r0", "r0", "r0"]
        assert queue.delete_calls == 1

    def test_a_receive_keeps_its_wait_and_deletes_what_came_due_meanwhile(self) -> None:
        """A pending delete does not shorten the long poll (no empty receives); it goes out after it."""
        queue = FakeQueue([_completed()], [])
        clock = ManualClock(100.0)
        consumer = Recorder({}).consumer(queue, 5.0, clock)
        consumer.consume_once(wait_seconds=10)
        clock.now += 10.0  # the empty long poll took its whole wait
        consumer.consume_once(wait_seconds=10)
        assert queue.waits == [10, 10]
        assert queue.deleted == ["r0"]

    def test_ten_handled_messages_are_deleted_at_once_in_batches_of_ten(self) -> None:
        """Ten waiting make a full batch: deleted at once; twelve take two calls of at most ten."""
        queue = FakeQueue([_completed()] * 8, [_completed()] * 4)
        consumer = Recorder({}).consumer(queue, 5.0, ManualClock(100.0))
        consumer.consume_once()
        assert queue.deleted == []
        consumer.consume_once()
        assert len(queue.deleted) == 12
        assert queue.delete_calls == 2

    def test_stopping_deletes_what_was_handled(self) -> None:
        """The thread's last act is the delete of what it handled, not a redelivery for another host."""
        queue = FakeQueue([_completed()])
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"})
        consumer = recorder.consumer(queue, 60.0)
        consumer.start()
        try:
            wait_until(lambda: recorder.woken, what="the wake", timeout=5)
        finally:
            consumer.stop()
        assert queue.deleted == ["r0"]


class TestThread:
    def test_the_thread_survives_a_failed_receive_and_goes_on(self) -> None:
        """An AWS error pauses the loop; it does not end it: the next batch still wakes its deployment."""
        queue = FakeQueue([_completed()], fail_first=True)
        recorder = Recorder({("us-east-1", "app", "web"): "dep-1"})
        consumer = recorder.consumer(queue)
        try:
            consumer.start()
            wait_until(lambda: recorder.woken, what="a wake after the failed receive", timeout=5)
        finally:
            consumer.stop()
        assert recorder.woken == ["dep-1"]
        assert not any(t.name == "deploy-agent-events" and t.is_alive() for t in threading.enumerate())
