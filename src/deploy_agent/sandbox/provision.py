"""Creates a complete, running ECS service behind an ALB in the sandbox, the way a user's AWS has one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
) -> ProvisionedService:
    """Return a new service (VPC, ALB, target group, listener, TD, service) once it is COMPLETED."""
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
        HealthCheckIntervalSeconds=5,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=2,
        Matcher={"HttpCode": "200"},
    )["TargetGroups"][0]["TargetGroupArn"]
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
    service_arn = ecs.create_service(
        cluster=cluster,
        serviceName=service,
        taskDefinition=task_definition,
        desiredCount=desired_count,
        launchType="FARGATE",
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
    # moto drops deploymentConfiguration on create_service; update_service keeps it.
    ecs.update_service(
        cluster=cluster,
        service=service,
        deploymentConfiguration=deployment_configuration
        or {
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        },
    )
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
        described = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
        deployments = described["deployments"]
        if (
            deployments
            and deployments[0]["rolloutState"] == want
            and (want != "COMPLETED" or len(deployments) == 1)
        ):
            return described
        time.sleep(0.05)
    raise TimeoutError(f"{cluster}/{service} did not reach {want}: {described.get('deployments')}")


def _wait_for_listener(sandbox: Sandbox, listener_arn: str, timeout_seconds: float) -> str:
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            return sandbox.load_balancer.url_for(listener_arn)
        except KeyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
