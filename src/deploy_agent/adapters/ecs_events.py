"""ECS's events through EventBridge into one SQS queue: set it up once, then read and delete.

``EventQueueMaker.setup`` (``deploy-agent events setup``) makes, idempotently, in one account and Region:
the queue, a rule on the default event bus matching ECS's deployment, service action and task
events (``core.ecs_events.event_pattern``), the rule's target (the queue), and the queue policy that
lets EventBridge send for that rule only. ``EventQueue`` is what the worker's consumer reads with.
Every call goes through ``AwsClients`` (errors translated, the fleet's quotas taken).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from deploy_agent.adapters.aws import AwsClients, call
from deploy_agent.core.ecs_events import event_pattern, queue_policy

DEFAULT_QUEUE = "deploy-agent-ecs-events"
DEFAULT_RULE = "deploy-agent-ecs-events"
TARGET_ID = "deploy-agent-queue"
#: events older than this are worth nothing (the safety poll has looked since): SQS drops them
RETENTION_SECONDS = 3600
#: SQS's longest long poll
LONGEST_WAIT_SECONDS = 20


@dataclass(frozen=True)
class EventQueueSetup:
    """What ``EventQueueMaker.setup`` made (or found): the queue and the rule that feeds it."""

    queue_url: str
    queue_arn: str
    rule_arn: str


class EventQueueMaker:
    """Makes the queue, the rule, its target and the queue policy (``deploy-agent events setup``)."""

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def setup(self, queue_name: str = DEFAULT_QUEUE, rule_name: str = DEFAULT_RULE) -> EventQueueSetup:
        """Create (or bring up to date) the queue, the rule, its target and the queue policy; return them.

        Idempotent: CreateQueue with the same attributes returns the existing queue, PutRule and
        PutTargets overwrite the rule and the target of the same name and id.
        """
        sqs = self._clients.client("sqs")
        events = self._clients.client("events")
        attributes = {
            "MessageRetentionPeriod": str(RETENTION_SECONDS),
            "ReceiveMessageWaitTimeSeconds": str(LONGEST_WAIT_SECONDS),
        }
        queue_url = str(call(sqs.create_queue, QueueName=queue_name, Attributes=attributes)["QueueUrl"])
        found = call(sqs.get_queue_attributes, QueueUrl=queue_url, AttributeNames=["QueueArn"])
        queue_arn = str(found["Attributes"]["QueueArn"])
        rule = call(
            events.put_rule,
            Name=rule_name,
            EventPattern=json.dumps(event_pattern()),
            State="ENABLED",
            Description="ECS deployment, service action and task events for deploy-agent's workers",
        )
        rule_arn = str(rule["RuleArn"])
        call(events.put_targets, Rule=rule_name, Targets=[{"Id": TARGET_ID, "Arn": queue_arn}])
        policy = json.dumps(queue_policy(queue_arn, rule_arn))
        call(sqs.set_queue_attributes, QueueUrl=queue_url, Attributes={"Policy": policy})
        return EventQueueSetup(queue_url, queue_arn, rule_arn)


@dataclass(frozen=True)
class Received:
    """One SQS message: its body and the handle that deletes it."""

    message_id: str
    receipt_handle: str
    body: str


class EventQueue:
    """The worker's side of the queue: long-poll up to 10 messages, delete them in one call."""

    def __init__(self, clients: AwsClients, queue_url: str) -> None:
        self._clients = clients
        self.queue_url = queue_url

    def receive(self, wait_seconds: int) -> list[Received]:
        """Return up to 10 messages, waiting up to ``wait_seconds`` (at most 20) for the first."""
        sqs = self._clients.client("sqs")
        answer: dict[str, Any] = call(
            sqs.receive_message,
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=max(0, min(LONGEST_WAIT_SECONDS, wait_seconds)),
        )
        return [
            Received(str(m.get("MessageId", "")), str(m["ReceiptHandle"]), str(m.get("Body", "")))
            for m in answer.get("Messages") or []
        ]

    def delete(self, messages: list[Received]) -> int:
        """Delete the messages (at most 10, one call); return how many SQS failed to delete."""
        if not messages:
            return 0
        sqs = self._clients.client("sqs")
        entries = [{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(messages)]
        answer: dict[str, Any] = call(sqs.delete_message_batch, QueueUrl=self.queue_url, Entries=entries)
        return len(answer.get("Failed") or [])
