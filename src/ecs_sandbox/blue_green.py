"""Blue-green and canary set-ups on top of ``provision_service``, as a user's AWS has them.

``provision_blue_green`` adds what a blue-green or canary deployment needs: an empty green target
group like the blue one and a test listener (port 8080) forwarding to it, both groups with a
deregistration delay of 30 AWS seconds (AWS's default is 300). ``provision_green_service`` starts a
second ECS service in a target group, as the worker does for its green or canary tasks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .provision import ProvisionedService, provision_service, wait_for_rollout
from .target_group_settings import DELAY_ATTRIBUTE

if TYPE_CHECKING:  # for annotations only: environment imports provision at its end
    from .environment import Sandbox


@dataclass(frozen=True)
class BlueGreenSetup(ProvisionedService):
    """A provisioned (blue) service plus the green target group and the test listener on it."""

    green_target_group_arn: str
    test_listener_arn: str
    test_url: str


def provision_blue_green(
    sandbox: Sandbox,
    cluster: str,
    service: str,
    image: str,
    desired_count: int = 2,
    health_path: str = "/health",
    container_port: int = 8080,
    test_listener_port: int = 8080,
    deregistration_delay_seconds: int = 30,
    **service_options: Any,
) -> BlueGreenSetup:
    """Return a COMPLETED service on the blue target group, an empty green one and a test listener on it.

    ``service_options`` go to ``provision_service`` (environment, deployment_configuration, ...).
    """
    elbv2 = sandbox.client("elbv2")
    blue = provision_service(
        sandbox,
        cluster,
        service,
        image,
        container_port=container_port,
        desired_count=desired_count,
        health_path=health_path,
        deregistration_delay_seconds=deregistration_delay_seconds,
        **service_options,
    )
    model = elbv2.describe_target_groups(TargetGroupArns=[blue.target_group_arn])["TargetGroups"][0]
    green = elbv2.create_target_group(
        Name=f"{service[:23]}-green-tg",
        Protocol=model["Protocol"],
        Port=model["Port"],
        VpcId=model["VpcId"],
        TargetType="ip",
        HealthCheckPath=model.get("HealthCheckPath", health_path),
        HealthCheckIntervalSeconds=model["HealthCheckIntervalSeconds"],
        HealthyThresholdCount=model["HealthyThresholdCount"],
        UnhealthyThresholdCount=model["UnhealthyThresholdCount"],
        Matcher=model.get("Matcher", {"HttpCode": "200"}),
    )["TargetGroups"][0]["TargetGroupArn"]
    for arn in (blue.target_group_arn, green):
        elbv2.modify_target_group_attributes(
            TargetGroupArn=arn,
            Attributes=[{"Key": DELAY_ATTRIBUTE, "Value": str(deregistration_delay_seconds)}],
        )
    balancer = elbv2.describe_listeners(ListenerArns=[blue.listener_arn])["Listeners"][0]["LoadBalancerArn"]
    test_listener = elbv2.create_listener(
        LoadBalancerArn=balancer,
        Protocol="HTTP",
        Port=test_listener_port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": green}],
    )["Listeners"][0]["ListenerArn"]
    return BlueGreenSetup(
        **dataclasses.asdict(blue),
        green_target_group_arn=green,
        test_listener_arn=test_listener,
        test_url=sandbox.load_balancer.url_for(test_listener),
    )


def provision_green_service(
    sandbox: Sandbox,
    provisioned: ProvisionedService,
    service: str,
    target_group_arn: str,
    image: str | None = None,
    desired_count: int = 2,
    wait: bool = True,
    timeout_seconds: float = 60.0,
) -> str:
    """Return the ARN of a new service like ``provisioned`` (its image swapped when given) in a target group.

    With ``wait``, it returns once the new service's deployment is COMPLETED (its targets healthy).
    """
    ecs = sandbox.client("ecs")
    model = ecs.describe_services(cluster=provisioned.cluster_arn, services=[provisioned.service_arn])[
        "services"
    ][0]
    balancer = model["loadBalancers"][0]
    task_definition = provisioned.task_definition_arn
    if image is not None:
        task_definition = register_image_revision(sandbox, task_definition, image)
    arn = str(
        ecs.create_service(
            cluster=provisioned.cluster_arn,
            serviceName=service,
            taskDefinition=task_definition,
            desiredCount=desired_count,
            launchType="FARGATE",
            loadBalancers=[
                {
                    "targetGroupArn": target_group_arn,
                    "containerName": balancer["containerName"],
                    "containerPort": balancer["containerPort"],
                }
            ],
            networkConfiguration=model["networkConfiguration"],
        )["service"]["serviceArn"]
    )
    if wait:
        cluster = provisioned.cluster_arn.rsplit("/", 1)[-1]
        wait_for_rollout(sandbox, cluster, service, timeout_seconds=timeout_seconds)
    return arn


def register_image_revision(sandbox: Sandbox, task_definition_arn: str, image: str) -> str:
    """Return the ARN of a new revision of the task definition whose containers all run ``image``."""
    ecs = sandbox.client("ecs")
    current = ecs.describe_task_definition(taskDefinition=task_definition_arn)["taskDefinition"]
    kept = ("family", "networkMode", "requiresCompatibilities", "cpu", "memory")
    return str(
        ecs.register_task_definition(
            **{key: current[key] for key in kept if key in current},
            containerDefinitions=[{**c, "image": image} for c in current["containerDefinitions"]],
        )["taskDefinition"]["taskDefinitionArn"]
    )
