"""ECS's EventBridge events as the worker reads them: which service an event is about, and whether
it may change a verdict (so the deployment holding that service should look at ECS now).

ECS sends, from source ``aws.ecs`` (each with ``resources`` naming the service or the task):

- "ECS Deployment State Change": SERVICE_DEPLOYMENT_IN_PROGRESS / _COMPLETED / _FAILED, with
  ``deploymentId`` and ``reason`` (docs.aws.amazon.com/AmazonECS/latest/developerguide/
  ecs_service_deployment_events.html);
- "ECS Service Action": SERVICE_STEADY_STATE, SERVICE_TASK_START_IMPAIRED, ... with ``clusterArn``
  (.../developerguide/ecs_service_events.html);
- "ECS Task State Change": the task as DescribeTasks shows it, ``group`` "service:<name>" for a
  service's task (.../developerguide/ecs_task_events.html).

The same event may come twice or late (EventBridge delivers at least once); a wake is harmless, so
nothing here deduplicates. ECS may add fields and names: anything unknown is ignored, not refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SOURCE = "aws.ecs"
DEPLOYMENT_STATE_CHANGE = "ECS Deployment State Change"
SERVICE_ACTION = "ECS Service Action"
TASK_STATE_CHANGE = "ECS Task State Change"
DETAIL_TYPES = (DEPLOYMENT_STATE_CHANGE, SERVICE_ACTION, TASK_STATE_CHANGE)
#: what the worker's consumer makes of an event (the metric's ``result`` label): it woke the
#: waiting stage, the stage was running (it looks again as soon as it ends), the event changes no
#: verdict (or it is a task's, and the stage waits only for its deployments' news), no deployment
#: holds its service, or the message is no ECS event
EVENT_RESULTS = ("woken", "running", "ignored", "unmatched", "malformed")

#: service actions that can change what DescribeServices says of a deployment
_SERVICE_ACTIONS_THAT_MATTER = frozenset(
    {"SERVICE_STEADY_STATE", "SERVICE_TASK_START_IMPAIRED", "SERVICE_DEPLOYMENT_COMPLETED"}
)
#: task states after which a service's counts differ. PROVISIONING/PENDING move no count we read;
#: DEACTIVATING/STOPPING are followed by STOPPED (a draining task ends the same way), and no verdict
#: turns on a task that is leaving: waking on them cost a DescribeServices per replaced task
_TASK_STATES_THAT_MATTER = frozenset({"RUNNING", "STOPPED"})


@dataclass(frozen=True)
class EcsEvent:
    """One ECS event, reduced to what the worker acts on."""

    detail_type: str
    name: str  # detail.eventName, or the task's lastStatus for a task state change
    region: str
    cluster: str | None  # None when neither the ARN nor the detail names it
    service: str | None  # None when the event is about no service (a task run by hand)
    #: the deployment a deployment state change is about ("" for the other kinds)
    deployment: str = ""
    #: a stopped task of the service, as JSON in DescribeTasks' shape (only what the result's
    #: diagnostics show: ``stopped_task``); "" for any other event
    stopped_task: str = ""

    @property
    def started(self) -> str:
        """Return the deployment a SERVICE_DEPLOYMENT_IN_PROGRESS announces ("" for any other event)."""
        return self.deployment if self.name == "SERVICE_DEPLOYMENT_IN_PROGRESS" else ""

    @property
    def about_tasks(self) -> bool:
        """Is this news of tasks alone (one task's state; ECS failing to start a service's tasks)?
        It moves counts, never a deployment's state: a stage waiting for ECS's verdict sleeps
        through it (a crash loop's SERVICE_TASK_START_IMPAIRED woke it, and the look that found no
        verdict backed off looking again, five DescribeServices for nothing)."""
        return self.detail_type == TASK_STATE_CHANGE or self.name == "SERVICE_TASK_START_IMPAIRED"


def parse_event(body: str) -> EcsEvent | None:
    """Return the ECS event an SQS message body carries, or None when it is not one (or malformed)."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("source") != SOURCE:
        return None
    detail_type, detail = event.get("detail-type"), event.get("detail")
    if detail_type not in DETAIL_TYPES or not isinstance(detail, dict):
        return None
    resources = [r for r in event.get("resources") or [] if isinstance(r, str)]
    region = str(event.get("region") or "") or _arn_part(resources[0] if resources else "", 3)
    if not region:
        return None
    cluster_arn = detail.get("clusterArn")
    cluster = _name_of(cluster_arn, "cluster/") if isinstance(cluster_arn, str) else None
    if detail_type == TASK_STATE_CHANGE:
        group = str(detail.get("group") or "")
        service = group.removeprefix("service:") if group.startswith("service:") else None
        status = str(detail.get("lastStatus") or "")
        stopped = json.dumps(stopped_task(detail), sort_keys=True) if status == "STOPPED" and service else ""
        return EcsEvent(detail_type, status, region, cluster, service, stopped_task=stopped)
    service_arn = next((r for r in resources if ":service/" in r), None)
    if service_arn is None:
        return None
    # The long ARN format (the default since 2021) is service/<cluster>/<service>; the old one has no cluster.
    path = service_arn.split(":service/", 1)[1].split("/")
    service, cluster = path[-1], (path[0] if len(path) == 2 else cluster)
    name = str(detail.get("eventName") or "")
    deployment = str(detail.get("deploymentId") or "") if detail_type == DEPLOYMENT_STATE_CHANGE else ""
    return EcsEvent(detail_type, name, region, cluster or None, service or None, deployment)


def stopped_task(detail: dict[str, Any]) -> dict[str, Any]:
    """Return what the result's diagnostics keep of a stopped task, from its state change's detail
    (the task as DescribeTasks shows it): its ARN, why and how it stopped, its containers' exit
    codes, and when it was created, started and stopped. Nothing else: no overrides, environment or
    attachments."""
    containers = [c for c in detail.get("containers") or [] if isinstance(c, dict)]
    kept: dict[str, Any] = {
        key: detail[key]
        for key in ("taskArn", "stoppedReason", "stopCode", "createdAt", "startedAt", "stoppedAt")
        if isinstance(detail.get(key), str)
    }
    kept["containers"] = [{"name": str(c.get("name", "")), "exitCode": c.get("exitCode")} for c in containers]
    return kept


def decide_wake(event: EcsEvent) -> bool:
    """Return whether the event may change what the deployment holding its service decides."""
    if event.cluster is None or event.service is None:
        return False
    if event.detail_type == DEPLOYMENT_STATE_CHANGE:
        return True
    if event.detail_type == SERVICE_ACTION:
        return event.name in _SERVICE_ACTIONS_THAT_MATTER
    return event.name in _TASK_STATES_THAT_MATTER


def event_pattern() -> dict[str, Any]:
    """Return the EventBridge event pattern of the rule that sends ECS's three kinds to the queue:
    every deployment state change, the service actions that may change a verdict, and only the task
    state changes a wake acts on (a service's task RUNNING or STOPPED). A task passes through
    PROVISIONING, PENDING, ACTIVATING, DEACTIVATING, STOPPING too: the queue carried about three
    events for each one a worker used, each a share of a ReceiveMessage and a DeleteMessageBatch.
    ``decide_wake`` still judges every event (an older, wider rule works the same). ``$or`` and
    ``prefix``: docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html."""
    return {
        "source": [SOURCE],
        "$or": [
            {"detail-type": [DEPLOYMENT_STATE_CHANGE]},
            {"detail-type": [SERVICE_ACTION], "detail": {"eventName": sorted(_SERVICE_ACTIONS_THAT_MATTER)}},
            {
                "detail-type": [TASK_STATE_CHANGE],
                "detail": {"lastStatus": sorted(_TASK_STATES_THAT_MATTER), "group": [{"prefix": "service:"}]},
            },
        ],
    }


def queue_policy(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """Return the SQS queue policy that lets EventBridge, for this rule only, send to the queue
    (docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sqs-permissions)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EcsEventsFromEventBridge",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }


def queue_region(queue_url: str, default: str) -> str:
    """Return the Region of a queue URL (``https://sqs.<region>.amazonaws.com/...``), else ``default``."""
    host = queue_url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs" and parts[2] == "amazonaws":
        return parts[1]
    return default


def _arn_part(arn: str, index: int) -> str:
    parts = arn.split(":")
    return parts[index] if arn.startswith("arn:") and len(parts) > index else ""


def _name_of(arn: str, kind: str) -> str | None:
    """Return the name after ``kind`` in an ARN (``cluster/`` in ...:cluster/web -> web)."""
    if f":{kind}" not in arn:
        return None
    return arn.split(f":{kind}", 1)[1].split("/")[0] or None
