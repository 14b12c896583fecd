"""ElbApi against the moto server: listener weights, exact restore, rules, target groups."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from deploy_agent.adapters.aws import AwsClients
from deploy_agent.adapters.elb import ElbApi
from deploy_agent.core.errors import AwsNotFound, PreflightFailed

from .conftest import ACCOUNT, REGION

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Alb:
    vpc_id: str
    lb_arn: str
    listener_arn: str
    blue_arn: str
    green_arn: str


@pytest.fixture
def elb(aws: AwsClients) -> ElbApi:
    return ElbApi(aws)


@pytest.fixture
def alb(aws: AwsClients) -> Alb:
    """A VPC with two subnets, an ALB, two ip target groups and a listener forwarding to blue."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for i, zone in enumerate("ab")
    ]
    sg = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc)["GroupId"]
    elbv2 = aws.elbv2
    lb = elbv2.create_load_balancer(Name="web", Subnets=subnets, SecurityGroups=[sg], Type="application")
    lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
    groups = {
        color: elbv2.create_target_group(
            Name=f"web-{color}",
            Protocol="HTTP",
            Port=8080,
            VpcId=vpc,
            TargetType="ip",
            HealthCheckPath="/health",
        )["TargetGroups"][0]["TargetGroupArn"]
        for color in ("blue", "green")
    }
    listener = elbv2.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": groups["blue"]}],
    )["Listeners"][0]["ListenerArn"]
    return Alb(vpc, lb_arn, listener, groups["blue"], groups["green"])


class TestListener:
    def test_plain_forward_reads_as_weight_one_for_blue(self, elb: ElbApi, alb: Alb) -> None:
        """A listener created with a plain forward to blue reads back as {blue: 1}."""
        listener = elb.describe_listener(alb.listener_arn)
        assert listener["LoadBalancerArn"] == alb.lb_arn
        assert elb.forward_weights(listener) == {alb.blue_arn: 1}

    def test_weights_are_set_and_read_back(self, elb: ElbApi, alb: Alb) -> None:
        """90/10 written through ForwardConfig reads back as exactly 90/10, port and protocol kept."""
        changed = elb.set_forward_weights(alb.listener_arn, {alb.blue_arn: 90, alb.green_arn: 10})
        listener = elb.describe_listener(alb.listener_arn)
        assert elb.forward_weights(changed) == {alb.blue_arn: 90, alb.green_arn: 10}
        assert elb.forward_weights(listener) == {alb.blue_arn: 90, alb.green_arn: 10}
        assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")

    def test_restore_puts_back_the_recorded_actions(self, elb: ElbApi, alb: Alb) -> None:
        """The actions recorded (through JSON, as Redis keeps them) before a shift are restored exactly."""
        recorded = json.loads(json.dumps(elb.describe_listener(alb.listener_arn)["DefaultActions"]))
        elb.set_forward_weights(alb.listener_arn, {alb.blue_arn: 0, alb.green_arn: 100})
        elb.restore_default_actions(alb.listener_arn, copy.deepcopy(recorded))
        assert elb.describe_listener(alb.listener_arn)["DefaultActions"] == recorded

    def test_weights_outside_the_alb_range_are_refused_before_calling_aws(
        self, elb: ElbApi, alb: Alb
    ) -> None:
        """A weight above 999 (which moto would store) raises and leaves the listener alone."""
        with pytest.raises(ValueError, match="outside 0-999"):
            elb.set_forward_weights(alb.listener_arn, {alb.blue_arn: 1000})
        assert elb.forward_weights(elb.describe_listener(alb.listener_arn)) == {alb.blue_arn: 1}

    def test_a_listener_that_does_not_forward_cannot_be_weighted(
        self, elb: ElbApi, alb: Alb, aws: AwsClients
    ) -> None:
        """A fixed-response default action has no traffic of ours to shift."""
        fixed: list[Any] = [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}]
        aws.elbv2.modify_listener(ListenerArn=alb.listener_arn, DefaultActions=fixed)
        with pytest.raises(PreflightFailed):
            elb.set_forward_weights(alb.listener_arn, {alb.blue_arn: 1})

    def test_missing_listener_is_not_found(self, elb: ElbApi, alb: Alb) -> None:
        """An unknown listener ARN raises AwsNotFound, translated from ListenerNotFound."""
        missing = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener/app/web/0123456789abcdef/ffff"
        with pytest.raises(AwsNotFound):
            elb.describe_listener(missing)

    def test_rules_include_the_default_rule_and_ours(self, elb: ElbApi, alb: Alb, aws: AwsClients) -> None:
        """describe_rules lists the default rule and a header rule sending testers to green."""
        aws.elbv2.create_rule(
            ListenerArn=alb.listener_arn,
            Priority=10,
            Conditions=[
                {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Canary", "Values": ["1"]}}
            ],
            Actions=[{"Type": "forward", "TargetGroupArn": alb.green_arn}],
        )
        rules = elb.describe_rules(alb.listener_arn)
        assert sorted(str(r["Priority"]) for r in rules) == ["10", "default"]
        ours = next(r for r in rules if r["Priority"] == "10")
        assert ours["Actions"][0]["TargetGroupArn"] == alb.green_arn


class TestTargetGroups:
    def test_target_group_is_described(self, elb: ElbApi, alb: Alb) -> None:
        """The ip target group reads back with its type, port and VPC."""
        group = elb.describe_target_group(alb.green_arn)
        assert (group["TargetType"], group["Port"], group["VpcId"]) == ("ip", 8080, alb.vpc_id)

    def test_missing_target_group_is_not_found(self, elb: ElbApi, alb: Alb) -> None:
        """An unknown target group ARN raises AwsNotFound."""
        with pytest.raises(AwsNotFound):
            elb.describe_target_group(alb.green_arn[:-4] + "0000")

    def test_attributes_are_read_as_strings(self, elb: ElbApi, alb: Alb, aws: AwsClients) -> None:
        """A deregistration delay we set is read back as the string AWS stores."""
        aws.elbv2.modify_target_group_attributes(
            TargetGroupArn=alb.blue_arn,
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}],
        )
        assert elb.target_group_attributes(alb.blue_arn)["deregistration_delay.timeout_seconds"] == "5"

    def test_target_health_lists_registered_targets(self, elb: ElbApi, alb: Alb, aws: AwsClients) -> None:
        """Registered ip targets show up in describe_target_health; an empty group has none."""
        aws.elbv2.register_targets(TargetGroupArn=alb.green_arn, Targets=[{"Id": "10.0.0.10", "Port": 8080}])
        health = elb.describe_target_health(alb.green_arn)
        assert [h["Target"]["Id"] for h in health] == ["10.0.0.10"]
        assert elb.describe_target_health(alb.blue_arn) == []


@pytest.fixture
def aws_rules_on() -> Iterator[None]:
    """The sandbox's ELB rules, among them: an OIDC write-back needs its secret or UseExistingClientSecret."""
    from ecs_sandbox import aws_rules
    from ecs_sandbox.realism import REALISTIC

    was = aws_rules.installed()
    aws_rules.install(REALISTIC)
    yield
    if not was:
        aws_rules.uninstall()


OIDC_CONFIG = {
    "Issuer": "https://idp.example",
    "AuthorizationEndpoint": "https://idp.example/auth",
    "TokenEndpoint": "https://idp.example/token",
    "UserInfoEndpoint": "https://idp.example/userinfo",
    "ClientId": "web",
}


@pytest.mark.usefixtures("aws_rules_on")
class TestOidcRoundTrip:
    """Issue 9, worker point 7: a listener behind authenticate-oidc is shifted and restored exactly."""

    @pytest.fixture
    def oidc_listener(self, alb: Alb, aws: AwsClients) -> list[dict[str, Any]]:
        aws.elbv2.modify_listener(
            ListenerArn=alb.listener_arn,
            DefaultActions=[
                {
                    "Type": "authenticate-oidc",
                    "Order": 1,
                    "AuthenticateOidcConfig": {**OIDC_CONFIG, "ClientSecret": "s3cret"},
                },
                {"Type": "forward", "Order": 2, "TargetGroupArn": alb.blue_arn},
            ],
        )
        described = aws.elbv2.describe_listeners(ListenerArns=[alb.listener_arn])["Listeners"][0]
        return [dict(a) for a in described["DefaultActions"]]

    def test_the_described_actions_alone_are_refused(
        self, alb: Alb, aws: AwsClients, oidc_listener: list[dict[str, Any]]
    ) -> None:
        """The control: writing back what DescribeListeners gave (no secret) fails, as on ELB."""
        assert "ClientSecret" not in oidc_listener[0]["AuthenticateOidcConfig"]
        with pytest.raises(ClientError, match="A client secret must be specified"):
            aws.elbv2.modify_listener(ListenerArn=alb.listener_arn, DefaultActions=oidc_listener)

    def test_weights_and_restore_keep_the_oidc_step_and_its_secret(
        self, elb: ElbApi, alb: Alb, aws: AwsClients, oidc_listener: list[dict[str, Any]]
    ) -> None:
        """set_forward_weights and restore_default_actions succeed; the listener ends as it began."""
        shifted = elb.set_forward_weights(alb.listener_arn, {alb.blue_arn: 0, alb.green_arn: 100})
        assert [a["Type"] for a in shifted["DefaultActions"]] == ["authenticate-oidc", "forward"]
        assert ElbApi.forward_weights(shifted) == {alb.blue_arn: 0, alb.green_arn: 100}
        elb.restore_default_actions(alb.listener_arn, oidc_listener)
        after = aws.elbv2.describe_listeners(ListenerArns=[alb.listener_arn])["Listeners"][0][
            "DefaultActions"
        ]
        assert [dict(a) for a in after] == oidc_listener

    def test_a_rule_behind_oidc_is_shifted_and_restored(self, elb: ElbApi, alb: Alb, aws: AwsClients) -> None:
        """set_rule_forward_weights / restore_rule_actions round-trip a rule with an OIDC step."""
        rule = aws.elbv2.create_rule(
            ListenerArn=alb.listener_arn,
            Priority=5,
            Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
            Actions=[
                {
                    "Type": "authenticate-oidc",
                    "Order": 1,
                    "AuthenticateOidcConfig": {**OIDC_CONFIG, "ClientSecret": "s"},
                },
                {"Type": "forward", "Order": 2, "TargetGroupArn": alb.blue_arn},
            ],
        )["Rules"][0]["RuleArn"]
        recorded = next(r for r in elb.describe_rules(alb.listener_arn) if r["RuleArn"] == rule)["Actions"]
        elb.set_rule_forward_weights(rule, recorded, {alb.blue_arn: 90, alb.green_arn: 10})
        moved = next(r for r in elb.describe_rules(alb.listener_arn) if r["RuleArn"] == rule)["Actions"]
        assert ElbApi.forward_weights({"DefaultActions": moved}) == {alb.blue_arn: 90, alb.green_arn: 10}
        elb.restore_rule_actions(rule, recorded)
        back = next(r for r in elb.describe_rules(alb.listener_arn) if r["RuleArn"] == rule)["Actions"]
        assert [dict(a) for a in back] == [dict(a) for a in recorded]
