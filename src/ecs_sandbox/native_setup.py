"""A running service that ECS's own BLUE_GREEN / LINEAR / CANARY controller deploys, as AWS sets one up.

``provision_native`` gives what https://docs.aws.amazon.com/AmazonECS/latest/developerguide/
alb-resources-for-blue-green.html asks for: two target groups (the service's and an alternate one),
an ALB whose production listener (port 80) has a production RULE forwarding blue 100 / green 0, a
test listener (``test_listener_port``) whose test rule forwards to blue, an IAM role ARN for ECS to
change them, and the service's ``loadBalancers[].advancedConfiguration`` naming them. The service
starts as a rolling service (``provision_service``) and is then switched to the native strategy with
UpdateService, as users migrate; what runs then is its production revision. Deploy it with
UpdateService (a new task definition, or forceNewDeployment) and follow it with
ListServiceDeployments / DescribeServiceDeployments.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .provision import ProvisionedService, provision_service
from .target_group_settings import DELAY_ATTRIBUTE

if TYPE_CHECKING:  # for annotations only: environment imports provision at its end
    from .environment import Sandbox

#: a rule that matches every request, so the rule (not the listener's default action) routes traffic
_EVERYTHING = [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}]


@dataclass(frozen=True)
class NativeSetup(ProvisionedService):
    """A provisioned service on a native strategy; ``url`` is the production listener's URL."""

    alternate_target_group_arn: str
    production_rule_arn: str
    test_listener_arn: str
    test_rule_arn: str
    role_arn: str
    test_url: str

    @property
    def production_url(self) -> str:
        """Return the production listener's URL (the same as ``url``)."""
        return self.url


def provision_native(
    sandbox: Sandbox,
    cluster: str,
    service: str,
    image: str,
    strategy: str = "BLUE_GREEN",
    desired_count: int = 2,
    deployment_configuration: dict[str, Any] | None = None,
    pause_at: tuple[str, ...] = (),
    hook_timeout_minutes: int = 1440,
    timeout_seconds: float = 60.0,
    **service_options: Any,
) -> NativeSetup:
    """Return a running service whose deployments ECS's native ``strategy`` controller plays.

    ``strategy``: BLUE_GREEN, LINEAR or CANARY. ``deployment_configuration`` is merged over the
    defaults (``bakeTimeInMinutes`` 1, the circuit breaker with rollback on; add
    ``linearConfiguration``, ``canaryConfiguration``, ``lifecycleHooks``, ``alarms`` ...).
    ``pause_at``: lifecycle stages that get one PAUSE hook (timeout ``hook_timeout_minutes``, action
    ROLLBACK). Minutes are AWS minutes, played at the sandbox's time scale. ``service_options`` go to
    ``provision_service`` (container_port, health_path, environment, ...).
    """
    ecs, elbv2 = sandbox.client("ecs"), sandbox.client("elbv2")
    blue = provision_service(
        sandbox,
        cluster,
        service,
        image,
        desired_count=desired_count,
        timeout_seconds=timeout_seconds,
        **service_options,
    )
    model = elbv2.describe_target_groups(TargetGroupArns=[blue.target_group_arn])["TargetGroups"][0]
    green = elbv2.create_target_group(
        Name=f"{service[:22]}-green-tg",
        Protocol=model["Protocol"],
        Port=model["Port"],
        VpcId=model["VpcId"],
        TargetType="ip",
        HealthCheckPath=model.get("HealthCheckPath", "/"),
        HealthCheckIntervalSeconds=model["HealthCheckIntervalSeconds"],
        HealthyThresholdCount=model["HealthyThresholdCount"],
        UnhealthyThresholdCount=model["UnhealthyThresholdCount"],
        Matcher=model.get("Matcher", {"HttpCode": "200"}),
    )["TargetGroups"][0]["TargetGroupArn"]
    delay = elbv2.describe_target_group_attributes(TargetGroupArn=blue.target_group_arn)["Attributes"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=green, Attributes=[a for a in delay if a["Key"] == DELAY_ATTRIBUTE]
    )
    both = {
        "TargetGroups": [
            {"TargetGroupArn": blue.target_group_arn, "Weight": 100},
            {"TargetGroupArn": green, "Weight": 0},
        ]
    }
    production_rule = elbv2.create_rule(
        ListenerArn=blue.listener_arn,
        Priority=1,
        Conditions=_EVERYTHING,
        Actions=[{"Type": "forward", "ForwardConfig": both}],
    )["Rules"][0]["RuleArn"]
    balancer = elbv2.describe_listeners(ListenerArns=[blue.listener_arn])["Listeners"][0]["LoadBalancerArn"]
    to_blue = [{"Type": "forward", "TargetGroupArn": blue.target_group_arn}]
    test_listener = elbv2.create_listener(
        LoadBalancerArn=balancer, Protocol="HTTP", Port=8080, DefaultActions=to_blue
    )["Listeners"][0]["ListenerArn"]
    test_rule = elbv2.create_rule(
        ListenerArn=test_listener, Priority=1, Conditions=_EVERYTHING, Actions=to_blue
    )["Rules"][0]["RuleArn"]
    role = f"arn:aws:iam::{blue.cluster_arn.split(':')[4]}:role/ecsInfrastructureRoleForLoadBalancers"
    described = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    load_balancers = [
        {
            **described["loadBalancers"][0],
            "advancedConfiguration": {
                "alternateTargetGroupArn": green,
                "productionListenerRule": production_rule,
                "testListenerRule": test_rule,
                "roleArn": role,
            },
        }
    ]
    configuration: dict[str, Any] = {
        "strategy": strategy,
        "bakeTimeInMinutes": 1,
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        **(deployment_configuration or {}),
    }
    if pause_at:
        hook = {
            "targetType": "PAUSE",
            "lifecycleStages": list(pause_at),
            "timeoutConfiguration": {"timeoutInMinutes": hook_timeout_minutes, "action": "ROLLBACK"},
        }
        configuration["lifecycleHooks"] = [*configuration.get("lifecycleHooks", []), hook]
    ecs.update_service(
        cluster=cluster, service=service, deploymentConfiguration=configuration, loadBalancers=load_balancers
    )
    _wait_until_native(sandbox, cluster, service, timeout_seconds)
    return NativeSetup(
        **dataclasses.asdict(blue),
        alternate_target_group_arn=green,
        production_rule_arn=production_rule,
        test_listener_arn=test_listener,
        test_rule_arn=test_rule,
        role_arn=role,
        test_url=sandbox.load_balancer.url_for(test_listener),
    )


def _wait_until_native(sandbox: Sandbox, cluster: str, service: str, timeout_seconds: float) -> None:
    """Wait until the native controller has taken the service over (its running revision is production)."""
    deadline = time.monotonic() + timeout_seconds
    native = sandbox.scheduler.native
    while time.monotonic() < deadline:
        if native.production_of(sandbox.region, cluster, service) is not None:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{cluster}/{service} was not taken over by the native controller")
