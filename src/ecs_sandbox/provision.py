"""Creates a complete, running ECS service behind an ALB in the sandbox, the way a user's AWS has one.

``provision_service`` gives a service on a target group behind the ALB's listener (port 80); the
listener exists before the service, as the AWS rules require (CreateService refuses a target group
no load balancer uses). ``deployment_controller`` (CODE_DEPLOY, EXTERNAL) and a native
``deployment_configuration`` (``strategy`` BLUE_GREEN / LINEAR / CANARY) give a service that another
controller manages, for tests that the worker refuses it.
``provision_blue_green`` adds what a blue-green or canary deployment needs: an empty green target
group like the blue one and a test listener (port 8080) forwarding to it, both groups with a
deregistration delay of 30 AWS seconds (AWS's default is 300). Every duration here is in AWS seconds,
which the sandbox plays at its profile's time scale. ``provision_green_service`` starts a
second ECS service in a target group, as the worker does for its green or canary tasks.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import aws_rules

if TYPE_CHECKING:  # environment re-exports this module's names, so no runtime import back
    from .environment import Sandbox


@dataclass(frozen=True)
class ProvisionedService:
    """The ARNs of a provisioned service and the URL its listener answers on."""

    cluster_arn: str
    service_arn: str
    task_definition_arn: str
    target_group_arn: str
    listener_arn: str
    url: str


def provision_service(
    sandbox: Sandbox,
    cluster: str,
    service: str,
    image: str,
    container_port: int = 8080,
    desired_count: int = 2,
    health_path: str = "/health",
    family: str | None = None,
    container_name: str = "app",
    environment: dict[str, str] | None = None,
    deployment_configuration: dict[str, Any] | None = None,
    timeout_seconds: float = 60.0,
    deployment_controller: str = "ECS",
    deregistration_delay_seconds: int = 30,
) -> ProvisionedService:
    """Return a new service (VPC, ALB, target group, listener, TD, service) once it is COMPLETED.

    A service with another ``deployment_controller`` is returned at once: the sandbox's scheduler
    plays only ECS's own controller, so it never rolls out.
    """
    ec2, ecs, elbv2 = sandbox.client("ec2"), sandbox.client("ecs"), sandbox.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{sandbox.region}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for i, zone in ((1, "a"), (2, "b"))
    ]
    group = ec2.create_security_group(GroupName=f"{service}-sg", Description=service, VpcId=vpc)["GroupId"]
    cluster_arn = ecs.create_cluster(clusterName=cluster)["cluster"]["clusterArn"]
    balancer = elbv2.create_load_balancer(
        Name=f"{service}-alb"[:32],
        Subnets=subnets,
        SecurityGroups=[group],
        Type="application",
        Scheme="internal",
    )["LoadBalancers"][0]["LoadBalancerArn"]
    target_group = elbv2.create_target_group(
        Name=f"{service}-tg"[:32],
        Protocol="HTTP",
        Port=container_port,
        VpcId=vpc,
        TargetType="ip",
        HealthCheckPath=health_path,
        # A tuned group, as many users have (AWS's defaults are 30 s, 5 and 2): the sandbox plays
        # these AWS seconds at its time scale.
        HealthCheckIntervalSeconds=10,
        HealthyThresholdCount=3,
        UnhealthyThresholdCount=2,
        Matcher={"HttpCode": "200"},
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=target_group,
        Attributes=[{"Key": _DELAY, "Value": str(deregistration_delay_seconds)}],
    )
    listener = elbv2.create_listener(
        LoadBalancerArn=balancer,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}],
    )["Listeners"][0]["ListenerArn"]
    task_definition = ecs.register_task_definition(
        family=family or service,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": container_name,
                "image": image,
                "essential": True,
                "memory": 512,  # moto bug B2: tasks need container-level memory
                "portMappings": [{"containerPort": container_port, "protocol": "tcp"}],
                "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    configuration = deployment_configuration or {
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    }
    service_arn = ecs.create_service(
        cluster=cluster,
        serviceName=service,
        taskDefinition=task_definition,
        desiredCount=desired_count,
        launchType="FARGATE",
        deploymentController={"type": deployment_controller},
        deploymentConfiguration=configuration,
        loadBalancers=[
            {"targetGroupArn": target_group, "containerName": container_name, "containerPort": container_port}
        ],
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": subnets,
                "securityGroups": [group],
                "assignPublicIp": "DISABLED",
            }
        },
    )["service"]["serviceArn"]
    if deployment_controller == "ECS":
        if not aws_rules.installed():
            # Plain moto drops deploymentConfiguration on create_service; update_service keeps it.
            ecs.update_service(cluster=cluster, service=service, deploymentConfiguration=configuration)
        wait_for_rollout(sandbox, cluster, service, timeout_seconds=timeout_seconds)
    url = _wait_for_listener(sandbox, listener, timeout_seconds)
    return ProvisionedService(cluster_arn, service_arn, task_definition, target_group, listener, url)


def wait_for_rollout(
    sandbox: Sandbox, cluster: str, service: str, want: str = "COMPLETED", timeout_seconds: float = 60.0
) -> dict[str, Any]:
    """Return the service once its PRIMARY deployment has rolloutState ``want`` and is the only one."""
    ecs = sandbox.client("ecs")
    deadline = time.monotonic() + timeout_seconds
    described: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = ecs.describe_services(cluster=cluster, services=[service])["services"]
        if not found:  # MISSING: ECS is eventually consistent right after CreateService
            time.sleep(0.05)
            continue
        described = found[0]
        deployments = described["deployments"]
        if (
            deployments
            and deployments[0]["rolloutState"] == want
            and (want != "COMPLETED" or len(deployments) == 1)
        ):
            return described
        time.sleep(0.05)
    stopped = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="STOPPED")["taskArns"][:5]
    reasons = [
        f"{t.get('stopCode')}: {t.get('stoppedReason')}"
        for t in (ecs.describe_tasks(cluster=cluster, tasks=stopped)["tasks"] if stopped else [])
    ]
    events = [e["message"] for e in described.get("events", [])[:5]]
    raise TimeoutError(
        f"{cluster}/{service} did not reach {want}: {described.get('deployments')}; "
        f"stopped tasks: {reasons}; latest events: {events}"
    )


def _wait_for_listener(sandbox: Sandbox, listener_arn: str, timeout_seconds: float) -> str:
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            return sandbox.load_balancer.url_for(listener_arn)
        except KeyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


_DELAY = "deregistration_delay.timeout_seconds"


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
            TargetGroupArn=arn, Attributes=[{"Key": _DELAY, "Value": str(deregistration_delay_seconds)}]
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
