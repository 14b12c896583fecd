"""moto's SQS and EventBridge made as cheap per call as AWS's: what grew with a queue's depth, cut.

An SQS queue stores any number of messages ("Messages per queue (backlog)": unlimited, Amazon SQS
standard queue quotas, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-queues.html)
and a backlog does not slow its calls; moto's calls grew with it, so a sandbox queue that
EventBridge fills faster than it is read (ECS's events of a fleet of 500 services: ~3,000 before a
worker reads the first) spiralled: at a depth of 3,000 one SendMessage took 86 ms and one
ReceiveMessage of 10 took 3.5 s, and the ECS scheduler thread, which puts ECS's events on the bus,
spent most of its time in SendMessage. The replacements answer exactly as moto's do:

- ``Queue.messages`` and the ``approximate_number_of_messages*`` attributes read the clock once per
  look instead of once or twice per message (moto's clock builds two datetimes per read);
  ``Queue.attributes`` reads all three counts, and SendMessage and GetQueueAttributes read it.
- ``SQSBackend.is_message_valid_based_on_retention_period`` reads the queue's retention period;
  moto's went through GetQueueAttributes, which builds every attribute three times (nine scans of
  the queue) for each message ReceiveMessage returns.
- jsonpath_ng's ``ext.parse`` keeps what it compiled: moto's EventBridge compiles the eight paths
  of the default input template (a yacc parser each, ~3 ms in all) for every event and target.
  A compiled path is not changed by ``find``, so sharing one is safe.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonpath_ng.ext
from moto.core.utils import unix_time, unix_time_millis
from moto.sqs.models import Message, Queue, SQSBackend

_CACHED_PATHS = 256


def _visible(message: Message, now: float) -> bool:
    return now > message.visible_at  # moto's Message.visible, at the instant ``now``


def _delayed(message: Message, now: float) -> bool:
    return now < message.delayed_until  # moto's Message.delayed, at the instant ``now``


def _messages(self: Queue) -> list[Message]:
    now = unix_time_millis()
    return [m for m in self._messages if _visible(m, now) and not _delayed(m, now)]


def _number_delayed(self: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in self._messages if _delayed(m, now))


def _number_not_visible(self: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in self._messages if not _visible(m, now))


def _number_visible(self: Queue) -> int:
    return len(_messages(self))


def _within_retention(self: SQSBackend, queue_name: str, message: Message) -> bool:
    queue: Any = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + int(message.sent_timestamp or 0) / 1000
    return retain_until > unix_time()


_applied = False


def apply() -> None:
    """Replace the moto and jsonpath_ng functions listed in the module docstring (idempotent)."""
    global _applied
    if _applied:
        return
    queue: Any = Queue
    queue.messages = property(_messages)
    queue.approximate_number_of_messages = property(_number_visible)
    queue.approximate_number_of_messages_delayed = property(_number_delayed)
    queue.approximate_number_of_messages_not_visible = property(_number_not_visible)
    SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]
    jsonpath: Any = jsonpath_ng.ext  # moto imports ``parse`` from here at each call
    jsonpath.parse = functools.lru_cache(maxsize=_CACHED_PATHS)(jsonpath.parse)
    _applied = True
