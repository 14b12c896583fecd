"""Creates a complete, running ECS service behind an ALB in the sandbox, the way a user's AWS has one.

``provision_service`` gives a service on a target group behind the ALB's listener (port 80); the
listener exists before the service, as the AWS rules require (CreateService refuses a target group
no load balancer uses). ``deployment_controller`` (CODE_DEPLOY, EXTERNAL) and a native
``deployment_configuration`` (``strategy`` BLUE_GREEN / LINEAR / CANARY) give a service that another
controller manages, for tests that the worker refuses it. Every duration here is in AWS seconds,
which the sandbox plays at its profile's time scale. Blue-green set-ups build on it (``blue_green``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import aws_rules
from .target_group_settings import DELAY_ATTRIBUTE

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
        Attributes=[{"Key": DELAY_ATTRIBUTE, "Value": str(deregistration_delay_seconds)}],
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
