"""The event consumer: a thread in every worker host's main process that turns ECS's events into wakes.

With ``events_queue_url`` set, each host long-polls the SQS queue that EventBridge fills with ECS's
events (``deploy-agent events setup``). For each event it finds the service's deployment (the holder
of the service's lock) and wakes its waiting stage on the agenda, so the stage looks at ECS now
instead of at its next poll, all the events of a receive (up to ten) in one Redis round trip
(``Agenda.wake_holders``: in an account with many services most events concern no deployment, and
each cost a round trip); then it deletes the messages. Several hosts may read the same queue:
SQS gives each message to one of them, and any host may wake any deployment.

An event that is malformed, about no service, or about a service no deployment holds is deleted and
counted, never retried: a lost wake costs only latency, as the stage's safety poll still comes.

Deletes are gathered: handled messages are deleted when ten are waiting (one DeleteMessageBatch
holds ten) or, after a receive, once the oldest came ``delete_after_seconds`` ago. The receive keeps
its full wait (a shorter one would add empty receives), so a message waits at most
``delete_after_seconds`` + ``wait_seconds`` (15 s) for its delete, inside the queue's visibility
timeout (30 s, as ``events setup`` leaves it). Deleting each batch at once cost one call per
receive, and most receives carry one event; a message SQS shows again because its delete came late
only wakes its deployment twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from deploy_agent.adapters.agenda import News, WakeHolders
from deploy_agent.adapters.ecs_events import Received
from deploy_agent.core.ecs_events import EcsEvent, decide_wake, parse_event
from deploy_agent.core.errors import DeployError

log = logging.getLogger("deploy_agent.events")

#: how long one ReceiveMessage waits for the first message (SQS allows up to 20)
WAIT_SECONDS = 10
#: pause after a failed receive (AWS or Redis unreachable), so a dead endpoint is not hammered
ERROR_PAUSE_SECONDS = 2.0
#: a handled message is deleted after the first receive that ends this long after it came
DELETE_AFTER_SECONDS = 5.0
#: most messages one DeleteMessageBatch takes
DELETE_BATCH = 10


class Queue(Protocol):
    def receive(self, wait_seconds: int) -> list[Received]: ...

    def delete(self, messages: list[Received]) -> int: ...


#: (region, cluster, service) -> the deployment id holding the service, or None

#: counts one event: (detail type, result)
CountEvent = Callable[[str, str], None]


class EventConsumer:
    """Receives ECS events from the queue and wakes the deployments they concern, until stopped."""

    def __init__(
        self,
        queue: Queue,
        wake_holders: WakeHolders,
        count: CountEvent,
        wait_seconds: int = WAIT_SECONDS,
        error_pause_seconds: float = ERROR_PAUSE_SECONDS,
        delete_after_seconds: float = DELETE_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._wake_holders = wake_holders
        self._count = count
        self._wait = wait_seconds
        self._error_pause = error_pause_seconds
        self._delete_after = delete_after_seconds
        self._clock = clock
        #: handled messages not yet deleted, and when the oldest of them came
        self._handled: list[Received] = []
        self._oldest_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EventConsumer:
        self._thread = threading.Thread(target=self._loop, name="deploy-agent-events", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the receive in flight (at most ``wait_seconds``; the thread is a daemon)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def consume_once(self, wait_seconds: int | None = None) -> int:
        """Receive one batch and wake the deployments it concerns; delete what is due; return the wakes."""
        messages = self._queue.receive(self._wait if wait_seconds is None else wait_seconds)
        woken = self._handle(messages)
        if messages and not self._handled:
            self._oldest_at = self._clock()
        self._handled += messages
        if len(self._handled) >= DELETE_BATCH or self._clock() >= self._oldest_at + self._delete_after:
            self.flush()
        return woken

    def flush(self) -> None:
        """Delete every handled message now, ten per call."""
        handled, self._handled = self._handled, []
        for start in range(0, len(handled), DELETE_BATCH):
            failed = self._queue.delete(handled[start : start + DELETE_BATCH])
            if failed:  # SQS gives them again after the visibility timeout: handled twice, harmlessly
                log.warning("SQS did not delete %d ECS event message(s)", failed)

    def _handle(self, messages: list[Received]) -> int:
        """Count each message's event and wake, in one round trip, the deployments they concern;
        return how many waiting stages were woken."""
        news: list[tuple[str, News]] = []
        for message in messages:
            event = parse_event(message.body)
            if event is None:
                self._count("unknown", "malformed")
            elif not decide_wake(event):
                self._count(event.detail_type, "ignored")
            else:
                news.append((event.detail_type, _news_of(event)))
        if not news:
            return 0
        results = self._wake_holders([n for _, n in news])
        for (detail_type, _), woken in zip(news, results, strict=True):
            self._count(detail_type, "unmatched" if woken is None else woken)
        return results.count("woken")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.consume_once()
            except (DeployError, redis.RedisError):
                log.warning("could not read ECS events; retrying", exc_info=True)
                self._stop.wait(self._error_pause)
            except Exception:  # never let the thread die: events are an optimisation
                log.exception("the ECS event consumer failed a batch; retrying")
                self._stop.wait(self._error_pause)
        try:
            self.flush()
        except DeployError:  # SQS shows them again later: one more wake each, harmless
            log.warning("could not delete the last ECS event messages", exc_info=True)


def _news_of(event: EcsEvent) -> News:
    """Return what the wake needs of an event that may change a verdict (``decide_wake``).

    A deployment's start is news to its stage only when another made it (ECS rolling back): the
    stage that sent UpdateService knows (the wake compares with the update's mark). The end of a
    deployment whose verdict the stage already has wakes it neither (``Progress.known``). A stopped
    task goes into the holder's book for the result's diagnostics (no ListTasks then).
    """
    assert event.cluster is not None
    assert event.service is not None
    return News(
        event.region,
        event.cluster,
        event.service,
        event.about_tasks,
        event.started,
        event.deployment,
        event.stopped_task,
    )
