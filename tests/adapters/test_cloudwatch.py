"""CloudWatchApi against the moto server: which alarms fire, which do not exist."""

from __future__ import annotations

import pytest

from deploy_agent.adapters.aws import AwsClients
from deploy_agent.adapters.cloudwatch import CloudWatchApi

pytestmark = pytest.mark.integration


def put_alarm(aws: AwsClients, name: str) -> None:
    aws.cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=5,
        ComparisonOperator="GreaterThanThreshold",
    )


@pytest.fixture
def cloudwatch(aws: AwsClients) -> CloudWatchApi:
    put_alarm(aws, "web-5xx")
    put_alarm(aws, "web-latency")
    return CloudWatchApi(aws)


class TestAlarms:
    def test_only_the_alarm_in_alarm_state_is_returned(
        self, cloudwatch: CloudWatchApi, aws: AwsClients
    ) -> None:
        """Of two alarms, the one set to ALARM comes back with its reason and time; the OK one does not."""
        aws.cloudwatch.set_alarm_state(AlarmName="web-5xx", StateValue="ALARM", StateReason="5xx burst")
        firing = cloudwatch.alarms_in_alarm(["web-5xx", "web-latency", "web-unknown"])
        assert [(a["name"], a["reason"]) for a in firing] == [("web-5xx", "5xx burst")]
        assert firing[0]["updated"][:2] == "20"  # an ISO 8601 timestamp

    def test_no_alarm_fires_after_creation(self, cloudwatch: CloudWatchApi) -> None:
        """Fresh alarms are not in ALARM, so nothing is returned."""
        assert cloudwatch.alarms_in_alarm(["web-5xx", "web-latency"]) == []

    def test_unknown_names_are_reported_missing(self, cloudwatch: CloudWatchApi) -> None:
        """Names no alarm has are reported once each, in the order given."""
        names = ["web-5xx", "nope-1", "web-latency", "nope-2", "nope-1"]
        assert cloudwatch.missing_alarms(names) == ["nope-1", "nope-2"]

    def test_more_than_one_batch_of_names(self, cloudwatch: CloudWatchApi, aws: AwsClients) -> None:
        """With 150 names (two DescribeAlarms batches) a firing alarm in the second batch is found."""
        aws.cloudwatch.set_alarm_state(AlarmName="web-latency", StateValue="ALARM", StateReason="slow")
        names = [f"absent-{i}" for i in range(149)] + ["web-latency"]
        assert [a["name"] for a in cloudwatch.alarms_in_alarm(names)] == ["web-latency"]
        assert len(cloudwatch.missing_alarms(names)) == 149

    def test_no_names_need_no_call(self, cloudwatch: CloudWatchApi) -> None:
        """An empty list of names gives empty answers."""
        assert cloudwatch.alarms_in_alarm([]) == []
        assert cloudwatch.missing_alarms([]) == []
