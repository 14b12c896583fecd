"""moto's SQS and EventBridge answer as before at a cost that does not grow with a queue (``moto_speed``).

In-process moto backends, no server (marked integration all the same: they use moto), each test in an
account of its own, so nothing leaks between tests.
Costs are counted, not timed: reads of moto's clock (moto's queue scans read it once or twice per
queued message) and compilations of JSONPath expressions.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import jsonpath_ng.ext.parser
import moto.core.utils
import pytest
from moto.backends import get_backend

from ecs_sandbox import moto_patches

pytestmark = pytest.mark.integration

REGION = "us-east-1"
_accounts = itertools.count(210000000001)


@pytest.fixture
def sqs() -> Iterator[Any]:
    """moto's SQS backend of an account no other test uses (the sandbox's patches applied)."""
    moto_patches.apply()
    account = str(next(_accounts))
    yield get_backend("sqs")[account][REGION]
    get_backend("sqs")[account].pop(REGION, None)
    get_backend("events")[account].pop(REGION, None)


@pytest.fixture
def clock_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count every read of moto's clock (all of moto's time helpers go through ``utcnow``)."""
    reads = [0]
    real = moto.core.utils.utcnow

    def counting() -> Any:
        reads[0] += 1
        return real()

    monkeypatch.setattr(moto.core.utils, "utcnow", counting)
    return reads


def _queue(sqs: Any, name: str, depth: int, retention_seconds: int = 3600) -> Any:
    queue = sqs.create_queue(name, MessageRetentionPeriod=str(retention_seconds))
    for i in range(depth):
        sqs.send_message(name, json.dumps({"i": i}))
    return queue


def _reads(reads: list[int], action: Any) -> int:
    before = reads[0]
    action()
    return reads[0] - before


class TestSameAnswers:
    def test_counts_follow_sends_receives_and_deletes(self, sqs: Any) -> None:
        """Visible, in-flight and delayed messages are counted as moto counts them."""
        _queue(sqs, "counts", 5)
        sqs.send_message("counts", "later", delay_seconds=60)
        received = sqs.receive_message("counts", 2, 0, 30)
        sqs.delete_message("counts", received[0].receipt_handle)
        attributes = sqs.get_queue_attributes("counts", ["All"])
        assert attributes["ApproximateNumberOfMessages"] == 3
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == 1
        assert attributes["ApproximateNumberOfMessagesDelayed"] == 1

    def test_a_receive_gives_visible_messages_oldest_first(self, sqs: Any) -> None:
        """ReceiveMessage returns up to the count asked, then what is left, then nothing."""
        _queue(sqs, "order", 12)
        first = sqs.receive_message("order", 10, 0, 30)
        second = sqs.receive_message("order", 10, 0, 30)
        assert [json.loads(m.body)["i"] for m in first] == list(range(10))
        assert [json.loads(m.body)["i"] for m in second] == [10, 11]
        assert sqs.receive_message("order", 10, 0, 30) == []

    def test_a_message_past_the_retention_period_is_not_received(self, sqs: Any) -> None:
        """A message older than MessageRetentionPeriod is never given out."""
        queue = _queue(sqs, "retention", 1, retention_seconds=60)
        queue._messages[0].sent_timestamp -= 120_000
        assert sqs.receive_message("retention", 10, 0, 30) == []


class TestCostsDoNotGrowWithTheQueue:
    def test_receive_reads_the_clock_as_often_with_1000_messages_queued_as_with_10(
        self, sqs: Any, clock_reads: list[int]
    ) -> None:
        """ReceiveMessage of 10 costs the same whatever waits behind them (moto scanned 9x per message)."""
        _queue(sqs, "shallow", 10)
        _queue(sqs, "deep", 1000)
        shallow = _reads(clock_reads, lambda: sqs.receive_message("shallow", 10, 0, 30))
        deep = _reads(clock_reads, lambda: sqs.receive_message("deep", 10, 0, 30))
        assert deep == shallow

    def test_send_reads_the_clock_as_often_with_1000_messages_queued_as_with_10(
        self, sqs: Any, clock_reads: list[int]
    ) -> None:
        """SendMessage (EventBridge's delivery to SQS) costs the same whatever the queue holds."""
        _queue(sqs, "shallow", 10)
        _queue(sqs, "deep", 1000)
        shallow = _reads(clock_reads, lambda: sqs.send_message("shallow", "x"))
        deep = _reads(clock_reads, lambda: sqs.send_message("deep", "x"))
        assert deep == shallow

    def test_event_bridge_compiles_its_input_paths_once_not_per_event(
        self, sqs: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A second event through a rule to SQS compiles no JSONPath (moto's compiled eight per event)."""
        queue = _queue(sqs, "events", 0)
        events = get_backend("events")[queue.account_id][REGION]
        pattern = json.dumps({"source": ["aws.ecs"]})
        events.put_rule("to-queue", event_pattern=pattern, state="ENABLED", description="",
                        scheduled_expression=None, role_arn=None, event_bus_arn=None, tags=[])  # fmt: skip
        events.put_targets("to-queue", "default", [{"Id": "q", "Arn": queue.queue_arn}])
        entry = {"Source": "aws.ecs", "DetailType": "ECS Task State Change", "Detail": json.dumps({"a": 1})}
        events.put_events([entry])
        compiled = [0]
        real_init = jsonpath_ng.ext.parser.ExtendedJsonPathParser.__init__

        def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
            compiled[0] += 1
            real_init(self, *args, **kwargs)

        monkeypatch.setattr(jsonpath_ng.ext.parser.ExtendedJsonPathParser, "__init__", counting_init)
        events.put_events([entry])
        assert compiled[0] == 0
        assert len(sqs.receive_message("events", 10, 0, 30)) == 2
