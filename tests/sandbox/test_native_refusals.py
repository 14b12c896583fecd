"""CreateService/UpdateService keep a native configuration and refuse what ECS refuses (boto3 over HTTP)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ecs_sandbox import Sandbox

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers"
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:hook"


@dataclass(frozen=True)
class Network:
    subnets: list[str]
    group: str
    blue: str
    green: str
    production_rule: str
    test_rule: str
    blue_only_rule: str


@pytest.fixture
def network(sandbox: Sandbox) -> Network:
    """An ALB with two target groups, a production rule over both, a test rule and a blue-only rule."""
    ec2, elbv2 = sandbox.client("ec2"), sandbox.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"][
            "SubnetId"
        ]
        for i, z in ((1, "a"), (2, "b"))
    ]
    group = ec2.create_security_group(GroupName="sg", Description="sg", VpcId=vpc)["GroupId"]
    balancer = elbv2.create_load_balancer(Name="alb", Subnets=subnets, SecurityGroups=[group])[
        "LoadBalancers"
    ][0]["LoadBalancerArn"]
    blue, green = (
        elbv2.create_target_group(Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for name in ("blue", "green")
    )
    every = [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}]
    both = {"TargetGroups": [{"TargetGroupArn": blue, "Weight": 100}, {"TargetGroupArn": green, "Weight": 0}]}
    to_blue = [{"Type": "forward", "TargetGroupArn": blue}]
    production = elbv2.create_listener(
        LoadBalancerArn=balancer, Protocol="HTTP", Port=80, DefaultActions=to_blue
    )
    test = elbv2.create_listener(LoadBalancerArn=balancer, Protocol="HTTP", Port=8080, DefaultActions=to_blue)
    rules = [
        elbv2.create_rule(
            ListenerArn=listener["Listeners"][0]["ListenerArn"],
            Priority=priority,
            Conditions=every,
            Actions=actions,
        )["Rules"][0]["RuleArn"]
        for listener, priority, actions in (
            (production, 1, [{"Type": "forward", "ForwardConfig": both}]),
            (test, 1, to_blue),
            (production, 2, to_blue),
        )
    ]
    sandbox.client("ecs").create_cluster(clusterName="c")
    return Network(subnets, group, blue, green, *rules)


def _valid(network: Network) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    configuration = {
        "strategy": "BLUE_GREEN",
        "bakeTimeInMinutes": 5,
        "lifecycleHooks": [
            {
                "targetType": "PAUSE",
                "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"],
                "timeoutConfiguration": {"timeoutInMinutes": 30, "action": "CONTINUE"},
            },
            {"hookTargetArn": LAMBDA, "roleArn": ROLE, "lifecycleStages": ["TEST_TRAFFIC_SHIFT"]},
        ],
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "alarms": {"alarmNames": ["web-5xx"], "enable": True, "rollback": True},
    }
    balancers = [
        {
            "targetGroupArn": network.blue,
            "containerName": "app",
            "containerPort": 8080,
            "advancedConfiguration": {
                "alternateTargetGroupArn": network.green,
                "productionListenerRule": network.production_rule,
                "testListenerRule": network.test_rule,
                "roleArn": ROLE,
            },
        }
    ]
    return configuration, balancers


def _unvalidated_ecs(sandbox: Sandbox) -> Any:
    """An ECS client that sends what botocore would refuse (timeoutInMinutes 0), as SDKs without
    botocore's range checks do: the server's own refusal is what is tested."""
    return boto3.client(
        "ecs",
        endpoint_url=sandbox.aws_endpoint_url,
        region_name=sandbox.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )


def _create(
    sandbox: Sandbox, network: Network, configuration: dict[str, Any], balancers: list[dict[str, Any]]
) -> Any:
    ecs = _unvalidated_ecs(sandbox)
    container = {"name": "app", "image": "busybox", "memory": 128, "essential": True}
    td = ecs.register_task_definition(family="web", containerDefinitions=[container])["taskDefinition"]
    return ecs.create_service(
        cluster="c",
        serviceName="web",
        taskDefinition=td["taskDefinitionArn"],
        desiredCount=0,
        deploymentConfiguration=configuration,
        loadBalancers=balancers,
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": network.subnets, "securityGroups": [network.group]}
        },
    )["service"]


Change = Callable[[dict[str, Any], dict[str, Any], Network], None]


def _hook(stage: str, **timeout: int) -> Change:
    def change(config: dict[str, Any], balancer: dict[str, Any], network: Network) -> None:
        hook: dict[str, Any] = {"targetType": "PAUSE", "lifecycleStages": [stage]}
        if timeout:
            hook["timeoutConfiguration"] = timeout
        config["lifecycleHooks"] = [hook]

    return change


REFUSED: list[tuple[str, Change]] = [
    ("no advancedConfiguration", lambda c, b, n: b.pop("advancedConfiguration")),
    (
        "alternate group is the primary",
        lambda c, b, n: b["advancedConfiguration"].update(alternateTargetGroupArn=n.blue),
    ),
    ("no roleArn", lambda c, b, n: b["advancedConfiguration"].pop("roleArn")),
    (
        "production rule does not exist",
        lambda c, b, n: b["advancedConfiguration"].update(
            productionListenerRule=n.production_rule[:-4] + "beef"
        ),
    ),
    (
        "production rule forwards to blue only",
        lambda c, b, n: b["advancedConfiguration"].update(productionListenerRule=n.blue_only_rule),
    ),
    ("PAUSE hook at TEST_TRAFFIC_SHIFT", _hook("TEST_TRAFFIC_SHIFT")),
    ("PAUSE hook at PRODUCTION_TRAFFIC_SHIFT", _hook("PRODUCTION_TRAFFIC_SHIFT")),
    ("hook timeout 0 minutes", _hook("POST_SCALE_UP", timeoutInMinutes=0)),
    ("hook timeout over 20160 minutes", _hook("POST_SCALE_UP", timeoutInMinutes=20161)),
    (
        "Lambda hook without its function",
        lambda c, b, n: c.update(lifecycleHooks=[{"lifecycleStages": ["PRE_SCALE_UP"]}]),
    ),
    ("bake time over 1440 minutes", lambda c, b, n: c.update(bakeTimeInMinutes=1441)),
    ("BLUE_GREEN without bake time", lambda c, b, n: c.pop("bakeTimeInMinutes")),
    (
        "linear step under 3 percent",
        lambda c, b, n: c.update(strategy="LINEAR", linearConfiguration={"stepPercent": 2.9}),
    ),
    (
        "canary under 0.1 percent",
        lambda c, b, n: c.update(strategy="CANARY", canaryConfiguration={"canaryPercent": 0.05}),
    ),
    (
        "linearConfiguration on BLUE_GREEN",
        lambda c, b, n: c.update(linearConfiguration={"stepPercent": 10.0}),
    ),
]


class TestNativeConfiguration:
    def test_a_valid_configuration_is_kept_and_described(self, sandbox: Sandbox, network: Network) -> None:
        """CreateService keeps deploymentConfiguration and advancedConfiguration for Describe."""
        configuration, balancers = _valid(network)
        _create(sandbox, network, configuration, balancers)
        described = sandbox.client("ecs").describe_services(cluster="c", services=["web"])["services"][0]
        assert {k: described["deploymentConfiguration"][k] for k in configuration} == configuration
        assert described["loadBalancers"] == balancers

    @pytest.mark.parametrize("change", [r[1] for r in REFUSED], ids=[r[0] for r in REFUSED])
    def test_create_refuses(self, sandbox: Sandbox, network: Network, change: Change) -> None:
        """CreateService refuses a native configuration ECS refuses, with InvalidParameterException."""
        configuration, balancers = _valid(network)
        configuration, balancers = copy.deepcopy(configuration), copy.deepcopy(balancers)
        change(configuration, balancers[0], network)
        with pytest.raises(ClientError) as refused:
            _create(sandbox, network, configuration, balancers)
        assert refused.value.response["Error"]["Code"] == "InvalidParameterException"

    def test_update_refuses_a_pause_hook_at_a_barred_stage(self, sandbox: Sandbox, network: Network) -> None:
        """UpdateService refuses a PAUSE hook at PRODUCTION_TRAFFIC_SHIFT and keeps the configuration."""
        configuration, balancers = _valid(network)
        _create(sandbox, network, configuration, balancers)
        ecs = sandbox.client("ecs")
        barred = {
            **configuration,
            "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}],
        }
        with pytest.raises(ecs.exceptions.InvalidParameterException):
            ecs.update_service(cluster="c", service="web", deploymentConfiguration=barred)
        described = ecs.describe_services(cluster="c", services=["web"])["services"][0]
        assert described["deploymentConfiguration"]["lifecycleHooks"] == configuration["lifecycleHooks"]
