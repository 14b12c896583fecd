"""CloudWatch alarms: which of the named alarms are firing, and which do not exist. Plain dicts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from deploy_agent.adapters.aws import AwsClients, call

#: DescribeAlarms takes at most 100 names per call and returns at most 100 records per page.
_NAMES_PER_CALL = 100


class CloudWatchApi:
    """The CloudWatch calls of the alarm gate (metric and composite alarms alike)."""

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def alarms_in_alarm(self, names: Sequence[str]) -> list[dict[str, str]]:
        """Return ``{"name", "reason", "updated"}`` for each named alarm in state ALARM, in ``names`` order.

        ``updated`` is the state change time as ISO 8601 text (JSON-ready). Unknown names are
        left out; see :meth:`missing_alarms`.
        """
        # Filtered here, not with StateValue: moto ignores StateValue when AlarmNames is given.
        found = {
            str(alarm["AlarmName"]): alarm
            for alarm in self._describe(names)
            if alarm.get("StateValue") == "ALARM"
        }
        return [
            {
                "name": name,
                "reason": str(found[name].get("StateReason", "")),
                "updated": _iso(found[name].get("StateUpdatedTimestamp")),
            }
            for name in dict.fromkeys(names)
            if name in found
        ]

    def missing_alarms(self, names: Sequence[str]) -> list[str]:
        """Return the names (in ``names`` order, once each) of alarms that do not exist."""
        existing = {str(alarm["AlarmName"]) for alarm in self._describe(names)}
        return [name for name in dict.fromkeys(names) if name not in existing]

    def _describe(self, names: Sequence[str]) -> Iterator[dict[str, Any]]:
        unique = list(dict.fromkeys(names))
        for start in range(0, len(unique), _NAMES_PER_CALL):
            kwargs: dict[str, Any] = {
                "AlarmNames": unique[start : start + _NAMES_PER_CALL],
                "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
                "MaxRecords": _NAMES_PER_CALL,
            }
            token: str | None = None
            while True:
                if token:
                    kwargs["NextToken"] = token
                response = call(self._clients.cloudwatch.describe_alarms, **kwargs)
                for alarm in [*response.get("MetricAlarms", []), *response.get("CompositeAlarms", [])]:
                    yield dict(alarm)
                token = response.get("NextToken")
                if not token:
                    break


def _iso(moment: object) -> str:
    return moment.isoformat() if isinstance(moment, datetime) else str(moment or "")
