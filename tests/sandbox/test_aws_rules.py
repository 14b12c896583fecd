"""The AWS rules moto skips, enforced by the sandbox (boto3 over HTTP against the moto server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ecs_sandbox import Sandbox, aws_rules, provision_native
from ecs_sandbox.provision import provision_service
from ecs_sandbox.realism import IDEALISED

from .realism_helpers import playing

pytestmark = pytest.mark.integration

CONTAINER = {"name": "app", "image": "busybox", "memory": 128, "essential": True}
OIDC = {
    "Issuer": "https://idp.example.com",
    "AuthorizationEndpoint": "https://idp.example.com/authorize",
    "TokenEndpoint": "https://idp.example.com/token",
    "UserInfoEndpoint": "https://idp.example.com/userinfo",
    "ClientId": "client-1",
}


@pytest.fixture
def rules(sandbox: Sandbox) -> Iterator[Sandbox]:
    # These tests read back what they just wrote: ECS's eventual consistency is not what they test.
    consistent = replace(sandbox.scheduler.realism, enforce_aws_rules=True, consistency_window_seconds=0.0)
    with playing(sandbox, consistent):
        assert aws_rules.installed()
        yield sandbox


def _network(sandbox: Sandbox) -> tuple[str, list[str], str]:
    ec2 = sandbox.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"][
            "SubnetId"
        ]
        for i, z in ((1, "a"), (2, "b"))
    ]
    group = ec2.create_security_group(GroupName="sg", Description="sg", VpcId=vpc)["GroupId"]
    return vpc, subnets, group


def _balancer(sandbox: Sandbox, vpc: str, subnets: list[str], group: str) -> tuple[str, str]:
    """Return (load balancer ARN, target group ARN); the group is used by no listener yet."""
    elbv2 = sandbox.client("elbv2")
    balancer = elbv2.create_load_balancer(Name="alb", Subnets=subnets, SecurityGroups=[group])[
        "LoadBalancers"
    ][0]["LoadBalancerArn"]
    target_group = elbv2.create_target_group(
        Name="tg", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    return balancer, target_group


def _create_service(sandbox: Sandbox, subnets: list[str], group: str, **extra: Any) -> dict[str, Any]:
    ecs = sandbox.client("ecs")
    ecs.create_cluster(clusterName="c")
    td = ecs.register_task_definition(family="web", containerDefinitions=[CONTAINER])["taskDefinition"]
    return dict(
        ecs.create_service(
            cluster="c",
            serviceName="web",
            taskDefinition=td["taskDefinitionArn"],
            desiredCount=0,
            networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [group]}},
            **extra,
        )["service"]
    )


class TestTargetGroupWithoutLoadBalancer:
    def test_create_service_on_an_unused_target_group_fails(self, rules: Sandbox) -> None:
        """A target group no listener forwards to: CreateService is AWS's InvalidParameterException."""
        vpc, subnets, group = _network(rules)
        _, target_group = _balancer(rules, vpc, subnets, group)

        with pytest.raises(ClientError) as raised:
            _create_service(
                rules,
                subnets,
                group,
                loadBalancers=[
                    {"targetGroupArn": target_group, "containerName": "app", "containerPort": 8080}
                ],
            )

        error = raised.value.response["Error"]
        assert error["Code"] == "InvalidParameterException"
        assert error["Message"] == (
            f"The target group with targetGroupArn {target_group} does not have an associated load balancer."
        )
        described = rules.client("ecs").describe_services(cluster="c", services=["web"])
        assert described["services"] == [], "nothing was created"

    @pytest.mark.parametrize("via", ["default action", "listener rule"])
    def test_a_target_group_a_listener_forwards_to_is_accepted(self, rules: Sandbox, via: str) -> None:
        """Forwarded to by a default action or by a rule, the target group has a load balancer."""
        elbv2 = rules.client("elbv2")
        vpc, subnets, group = _network(rules)
        balancer, target_group = _balancer(rules, vpc, subnets, group)
        fixed = {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}
        forward = {"Type": "forward", "TargetGroupArn": target_group}
        listener = elbv2.create_listener(
            LoadBalancerArn=balancer, Protocol="HTTP", Port=80,
            DefaultActions=[forward if via == "default action" else fixed],
        )["Listeners"][0]["ListenerArn"]  # fmt: skip
        if via == "listener rule":
            elbv2.create_rule(
                ListenerArn=listener,
                Priority=1,
                Conditions=[{"Field": "path-pattern", "Values": ["/api/*"]}],
                Actions=[
                    {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": target_group}]}}
                ],
            )

        service = _create_service(
            rules,
            subnets,
            group,
            loadBalancers=[{"targetGroupArn": target_group, "containerName": "app", "containerPort": 8080}],
        )

        assert service["loadBalancers"][0]["targetGroupArn"] == target_group

    def test_without_the_rules_moto_accepts_it(self, sandbox: Sandbox) -> None:
        """The idealised profile installs nothing: moto's own (lenient) answer."""
        with playing(sandbox, IDEALISED):
            assert not aws_rules.installed()
            self._create_with_an_unused_target_group(sandbox)

    def _create_with_an_unused_target_group(self, sandbox: Sandbox) -> None:
        vpc, subnets, group = _network(sandbox)
        _, target_group = _balancer(sandbox, vpc, subnets, group)

        service = _create_service(
            sandbox,
            subnets,
            group,
            loadBalancers=[{"targetGroupArn": target_group, "containerName": "app", "containerPort": 8080}],
        )

        assert service["status"] == "ACTIVE"


BLUE_GREEN = {
    "strategy": "BLUE_GREEN",
    "bakeTimeInMinutes": 5,
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
    "lifecycleHooks": [
        {
            "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:hook",
            "roleArn": "arn:aws:iam::123456789012:role/hook",
            "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
        }
    ],
}
CANARY = {
    "strategy": "CANARY",
    "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 3},
}
LINEAR = {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 2}}


class TestDeploymentControllers:
    @pytest.mark.parametrize(
        "configuration", [BLUE_GREEN, CANARY, LINEAR], ids=["blue_green", "canary", "linear"]
    )
    def test_a_native_strategy_is_kept_on_create(self, rules: Sandbox, configuration: dict[str, Any]) -> None:
        """CreateService's deploymentConfiguration (moto drops it) is what Create and Describe answer."""
        _, subnets, group = _network(rules)

        created = _create_service(
            rules, subnets, group, deploymentConfiguration=configuration, healthCheckGracePeriodSeconds=30
        )
        described = rules.client("ecs").describe_services(cluster="c", services=["web"])["services"][0]

        for answer in (created, described):
            for key, value in configuration.items():
                assert answer["deploymentConfiguration"][key] == value
            assert answer["healthCheckGracePeriodSeconds"] == 30

    def test_capacity_provider_strategy_replaces_the_launch_type(self, rules: Sandbox) -> None:
        """A service on a capacity provider strategy describes with it and without a launch type."""
        _, subnets, group = _network(rules)
        strategy = [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]

        _create_service(rules, subnets, group, capacityProviderStrategy=strategy, enableExecuteCommand=True)
        described = rules.client("ecs").describe_services(cluster="c", services=["web"])["services"][0]

        assert described["capacityProviderStrategy"] == strategy
        assert described["enableExecuteCommand"] is True
        assert "launchType" not in described

    def test_code_deploy_refuses_a_task_definition_change(self, rules: Sandbox) -> None:
        """UpdateService with a taskDefinition on a CODE_DEPLOY service: ECS's InvalidParameterException."""
        _, subnets, group = _network(rules)
        _create_service(rules, subnets, group, deploymentController={"type": "CODE_DEPLOY"})
        ecs = rules.client("ecs")
        td = ecs.register_task_definition(family="web", containerDefinitions=[CONTAINER])["taskDefinition"]

        with pytest.raises(ClientError) as raised:
            ecs.update_service(cluster="c", service="web", taskDefinition=td["taskDefinitionArn"])

        assert raised.value.response["Error"]["Code"] == "InvalidParameterException"
        assert raised.value.response["Error"]["Message"] == (
            "Unable to update task definition on services with a CODE_DEPLOY deployment controller. "
            "Use AWS CodeDeploy to trigger a new deployment."
        )
        described = ecs.describe_services(cluster="c", services=["web"])["services"][0]
        assert described["taskDefinition"].endswith(":1")
        assert described["deploymentController"] == {"type": "CODE_DEPLOY"}

    def test_code_deploy_still_takes_a_desired_count(self, rules: Sandbox) -> None:
        """What the doc allows (desired count, grace period) goes through on CODE_DEPLOY."""
        _, subnets, group = _network(rules)
        _create_service(rules, subnets, group, deploymentController={"type": "CODE_DEPLOY"})

        updated = rules.client("ecs").update_service(
            cluster="c", service="web", desiredCount=3, healthCheckGracePeriodSeconds=60
        )["service"]

        assert (updated["desiredCount"], updated["healthCheckGracePeriodSeconds"]) == (3, 60)

    @pytest.mark.parametrize(
        ("change", "allowed"),
        [
            ({"desiredCount": 2}, True),
            ({"propagateTags": "SERVICE"}, True),
            ({"forceNewDeployment": True}, False),
            ({"deploymentConfiguration": {"maximumPercent": 150}}, False),
            ({"networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}}, False),
        ],
        ids=["desired count", "propagate tags", "force", "deployment configuration", "network"],
    )
    def test_external_takes_only_what_the_doc_lists(
        self, rules: Sandbox, change: dict[str, Any], allowed: bool
    ) -> None:
        """EXTERNAL: desired count, placement, grace period, tags options; the rest is refused."""
        _, subnets, group = _network(rules)
        _create_service(rules, subnets, group, deploymentController={"type": "EXTERNAL"})
        ecs = rules.client("ecs")

        if allowed:
            ecs.update_service(cluster="c", service="web", **change)
        else:
            with pytest.raises(ClientError, match="EXTERNAL deployment controller"):
                ecs.update_service(cluster="c", service="web", **change)


class TestRefusalTable:
    @pytest.mark.parametrize(
        ("controller", "params", "refused"),
        [
            ("ECS", {"taskDefinition": "web:2"}, False),
            ("CODE_DEPLOY", {"taskDefinition": "web:2", "desiredCount": 2}, True),
            ("CODE_DEPLOY", {"deploymentConfiguration": {}, "desiredCount": 1}, False),
            ("CODE_DEPLOY", {"forceNewDeployment": False}, False),
            ("CODE_DEPLOY", {"loadBalancers": []}, True),
            ("EXTERNAL", {"deploymentConfiguration": {}}, True),
            ("EXTERNAL", {"placementStrategy": []}, False),
        ],
    )
    def test_update_refusal(self, controller: str, params: dict[str, Any], refused: bool) -> None:
        """update_refusal refuses exactly what botocore's UpdateService doc says a controller can't change."""
        params = {"cluster": "c", "service": "web", **params}
        assert (aws_rules.update_refusal(controller, params) is not None) == refused


def _oidc_listener(sandbox: Sandbox) -> tuple[str, str]:
    vpc, subnets, group = _network(sandbox)
    balancer, target_group = _balancer(sandbox, vpc, subnets, group)
    listener = sandbox.client("elbv2").create_listener(
        LoadBalancerArn=balancer,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {
                "Type": "authenticate-oidc",
                "Order": 1,
                "AuthenticateOidcConfig": {**OIDC, "ClientSecret": "s3cret"},
            },
            {"Type": "forward", "Order": 2, "TargetGroupArn": target_group},
        ],
    )["Listeners"][0]
    return str(listener["ListenerArn"]), target_group


class TestOidcClientSecret:
    def test_describe_listeners_never_returns_the_secret(self, rules: Sandbox) -> None:
        """DescribeListeners: no ClientSecret, and the documented defaults filled in."""
        listener, _ = _oidc_listener(rules)

        described = rules.client("elbv2").describe_listeners(ListenerArns=[listener])["Listeners"][0]
        config = described["DefaultActions"][0]["AuthenticateOidcConfig"]

        assert "ClientSecret" not in config
        assert {k: config[k] for k in ("SessionCookieName", "Scope", "SessionTimeout")} == {
            "SessionCookieName": "AWSELBAuthSessionCookie",
            "Scope": "openid",
            "SessionTimeout": 604800,
        }

    def test_modify_listener_without_the_secret_is_refused(self, rules: Sandbox) -> None:
        """Sending back what DescribeListeners gave (no secret) is an InvalidConfigurationRequest."""
        listener, _ = _oidc_listener(rules)
        elbv2 = rules.client("elbv2")
        actions = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"]

        with pytest.raises(ClientError) as raised:
            elbv2.modify_listener(ListenerArn=listener, DefaultActions=actions)

        assert raised.value.response["Error"]["Code"] == "InvalidConfigurationRequest"
        assert "UseExistingClientSecret" in raised.value.response["Error"]["Message"]

    def test_use_existing_client_secret_keeps_the_secret(self, rules: Sandbox) -> None:
        """With UseExistingClientSecret the modify goes through and the stored secret is the old one."""
        listener, _ = _oidc_listener(rules)
        elbv2 = rules.client("elbv2")
        actions = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"]
        actions[0]["AuthenticateOidcConfig"]["UseExistingClientSecret"] = True
        actions[0]["AuthenticateOidcConfig"]["Scope"] = "openid email"

        answer = elbv2.modify_listener(ListenerArn=listener, DefaultActions=actions)["Listeners"][0]

        assert answer["DefaultActions"][0]["AuthenticateOidcConfig"]["Scope"] == "openid email"
        assert "ClientSecret" not in answer["DefaultActions"][0]["AuthenticateOidcConfig"]
        from moto.backends import get_backend

        stored = get_backend("elbv2")["123456789012"]["us-east-1"].describe_listeners(None, [listener])[0]
        assert getattr(stored.default_actions[0], "client_secret", None) == "s3cret"

    def test_create_listener_without_a_secret_is_refused(self, rules: Sandbox) -> None:
        """Creating an authenticate-oidc action needs ClientSecret (UseExistingClientSecret does not do)."""
        vpc, subnets, group = _network(rules)
        balancer, _ = _balancer(rules, vpc, subnets, group)

        with pytest.raises(ClientError, match="client secret must be specified"):
            rules.client("elbv2").create_listener(
                LoadBalancerArn=balancer,
                Protocol="HTTP",
                Port=80,
                DefaultActions=[
                    {
                        "Type": "authenticate-oidc",
                        "AuthenticateOidcConfig": {**OIDC, "UseExistingClientSecret": True},
                    }
                ],
            )


class TestProvisionUnderTheRules:
    def test_provisioned_service_is_valid_and_keeps_a_native_strategy(
        self, rules: Sandbox, web_image: Callable[[str, str], str]
    ) -> None:
        """BLUE_GREEN without advancedConfiguration is refused; provision_native's BLUE_GREEN is kept."""
        with pytest.raises(ClientError) as refused:
            provision_service(
                rules, "c", "web", web_image("v1", "ok"), desired_count=1, deployment_configuration=BLUE_GREEN
            )
        assert refused.value.response["Error"]["Code"] == "InvalidParameterException"

        provisioned = provision_native(
            rules, "c", "native", web_image("v1", "ok"), desired_count=1, deployment_configuration=BLUE_GREEN
        )

        described = rules.client("ecs").describe_services(cluster="c", services=["native"])["services"][0]
        assert described["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"
        assert described["runningCount"] == 1
        assert provisioned.url

    @pytest.mark.parametrize("controller", ["CODE_DEPLOY", "EXTERNAL"])
    def test_another_controller(
        self, rules: Sandbox, controller: str, web_image: Callable[[str, str], str]
    ) -> None:
        """provision_service(deployment_controller=...) gives a service ECS's scheduler leaves alone."""
        provision_service(
            rules, "c", "web", web_image("v1", "ok"), desired_count=1, deployment_controller=controller
        )

        described = rules.client("ecs").describe_services(cluster="c", services=["web"])["services"][0]
        assert described["deploymentController"] == {"type": controller}
        assert rules.client("ecs").list_tasks(cluster="c")["taskArns"] == []


class TestListServices:
    def test_a_cluster_lists_only_its_own_services(self, rules: Sandbox) -> None:
        """Cluster "c" does not list the services of cluster "sec", whose name ends like it (moto bug)."""
        ecs = rules.client("ecs")
        td = ecs.register_task_definition(family="web", containerDefinitions=[CONTAINER])["taskDefinition"]
        for cluster in ("c", "sec"):
            ecs.create_cluster(clusterName=cluster)
            ecs.create_service(
                cluster=cluster,
                serviceName=f"{cluster}-web",
                taskDefinition=td["taskDefinitionArn"],
                desiredCount=0,
            )

        listed = ecs.list_services(cluster="c")["serviceArns"]

        assert [arn.rsplit("/", 1)[-1] for arn in listed] == ["c-web"]
