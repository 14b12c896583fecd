"""EcsApi and the AWS error translation, against a moto server (and a throttling HTTP server)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
import requests
from moto.backends import get_backend

from deploy_agent.adapters.aws import AwsClients, call
from deploy_agent.adapters.ecs import EcsApi
from deploy_agent.core.errors import AwsError, AwsNotFound, AwsThrottled
from deploy_agent.core.taskdef import diff_task_definitions, plan_task_definition
from tests.support import free_port

from .conftest import ACCOUNT, REGION

if TYPE_CHECKING:
    from mypy_boto3_ecs.type_defs import NetworkConfigurationTypeDef

pytestmark = pytest.mark.integration

SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:web/db-AbCdEf"
TASK_DEFINITION: dict[str, Any] = {
    "family": "web",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "256",
    "memory": "512",
    "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/exec",
    "containerDefinitions": [
        {
            "name": "web",
            "image": "repo/web:1",
            "essential": True,
            "memory": 256,  # moto's run_task needs container-level memory (moto.md B2)
            "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
            "environment": [{"name": "MODE", "value": "ok"}],
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": SECRET_ARN}],
        },
        {"name": "sidecar", "image": "repo/envoy:1", "essential": False, "memory": 128},
    ],
    "tags": [{"key": "team", "value": "payments"}],
}


@pytest.fixture
def ecs(aws: AwsClients) -> EcsApi:
    return EcsApi(aws)


@pytest.fixture
def network(aws: AwsClients) -> NetworkConfigurationTypeDef:
    """An awsvpc network configuration moto accepts (a subnet and a security group)."""
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # moto.md B1
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    return {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}


@pytest.fixture
def cluster(aws: AwsClients) -> str:
    aws.ecs.create_cluster(clusterName="app")
    return "app"


@pytest.fixture
def td_arn(ecs: EcsApi) -> str:
    return str(ecs.register_task_definition(TASK_DEFINITION)["taskDefinitionArn"])


def _create_service(
    aws: AwsClients, cluster: str, name: str, td_arn: str, network: NetworkConfigurationTypeDef
) -> None:
    aws.ecs.create_service(
        cluster=cluster,
        serviceName=name,
        taskDefinition=td_arn,
        desiredCount=1,
        launchType="FARGATE",
        networkConfiguration=network,
    )


class TestTaskDefinitions:
    def test_register_and_describe_round_trip_with_secrets_and_tags(self, ecs: EcsApi, td_arn: str) -> None:
        """A registered definition reads back with its containers, secret ARNs and tags."""
        td = ecs.describe_task_definition(td_arn)
        assert td["taskDefinitionArn"] == td_arn
        assert td["revision"] == 1
        assert td["containerDefinitions"][0]["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": SECRET_ARN}]
        assert [c["image"] for c in td["containerDefinitions"]] == ["repo/web:1", "repo/envoy:1"]
        assert td["tags"] == [{"key": "team", "value": "payments"}]

    def test_a_planned_revision_registers_and_keeps_everything_but_the_image(
        self, ecs: EcsApi, td_arn: str
    ) -> None:
        """describe -> plan_task_definition -> register gives revision 2 differing only in the image."""
        current = ecs.describe_task_definition(td_arn)
        registered = ecs.register_task_definition(plan_task_definition(current, "repo/web@sha256:feed"))
        again = ecs.describe_task_definition(registered["taskDefinitionArn"])
        assert again["revision"] == 2
        assert diff_task_definitions(current, again) == [
            "container web: image repo/web:1 -> repo/web@sha256:feed"
        ]
        assert again["containerDefinitions"][1]["image"] == "repo/envoy:1"
        assert again["containerDefinitions"][0]["secrets"] == [
            {"name": "DB_PASSWORD", "valueFrom": SECRET_ARN}
        ]
        assert again["tags"] == [{"key": "team", "value": "payments"}]

    def test_a_second_registration_is_the_next_revision(self, ecs: EcsApi, td_arn: str) -> None:
        """Registering the family again gives revision 2 with a new ARN."""
        again = ecs.register_task_definition(TASK_DEFINITION)
        assert again["revision"] == 2
        assert again["taskDefinitionArn"] != td_arn

    def test_missing_task_definition_is_not_found(self, ecs: EcsApi) -> None:
        """Describing a family that does not exist raises AwsNotFound."""
        with pytest.raises(AwsNotFound) as missing:
            ecs.describe_task_definition("nope:7")
        assert missing.value.service == "ecs"
        assert missing.value.operation == "DescribeTaskDefinition"


class TestServices:
    def test_update_service_sets_the_arn_and_deployment_configuration(
        self, ecs: EcsApi, aws: AwsClients, cluster: str, td_arn: str, network: NetworkConfigurationTypeDef
    ) -> None:
        """update_service stores the task definition ARN, count and rollout settings (read back)."""
        _create_service(aws, cluster, "web", td_arn, network)
        new_arn = ecs.register_task_definition(TASK_DEFINITION)["taskDefinitionArn"]
        returned = ecs.update_service(
            cluster,
            "web",
            new_arn,
            desired_count=3,
            maximum_percent=200,
            minimum_healthy_percent=50,
            circuit_breaker=True,
            circuit_breaker_rollback=True,
        )
        assert returned["taskDefinition"] == new_arn
        service = ecs.describe_service(cluster, "web")
        assert service["taskDefinition"] == new_arn
        assert service["desiredCount"] == 3
        assert service["deploymentConfiguration"] == {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 50,
        }

    def test_desired_count_none_keeps_the_count(
        self, ecs: EcsApi, aws: AwsClients, cluster: str, td_arn: str, network: NetworkConfigurationTypeDef
    ) -> None:
        """Without desired_count the service keeps its current count."""
        _create_service(aws, cluster, "web", td_arn, network)
        assert ecs.update_service(cluster, "web", td_arn)["desiredCount"] == 1

    def test_update_service_refuses_a_non_arn(self, ecs: EcsApi) -> None:
        """A family:revision string is refused before any call (moto would store it verbatim)."""
        with pytest.raises(ValueError, match="ARN"):
            ecs.update_service("app", "web", "web:2")

    def test_missing_service_is_not_found_naming_it(self, ecs: EcsApi, cluster: str) -> None:
        """describe_service of a service that does not exist raises AwsNotFound naming it."""
        with pytest.raises(AwsNotFound, match="ECS service ghost not found in cluster app") as missing:
            ecs.describe_service(cluster, "ghost")
        assert missing.value.code == "MISSING"

    def test_deleted_service_is_not_found(
        self, ecs: EcsApi, aws: AwsClients, cluster: str, td_arn: str, network: NetworkConfigurationTypeDef
    ) -> None:
        """A deleted (INACTIVE) service is reported as not found."""
        _create_service(aws, cluster, "web", td_arn, network)
        aws.ecs.delete_service(cluster=cluster, service="web", force=True)
        with pytest.raises(AwsNotFound, match="INACTIVE"):
            ecs.describe_service(cluster, "web")

    def test_missing_cluster_is_not_found(self, ecs: EcsApi) -> None:
        """A missing cluster is AwsNotFound too (ClusterNotFoundException)."""
        with pytest.raises(AwsNotFound) as missing:
            ecs.update_service("nocluster", "web", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:1")
        assert missing.value.code == "ClusterNotFoundException"

    def test_describe_services_batches_beyond_ten(
        self, ecs: EcsApi, aws: AwsClients, cluster: str, td_arn: str, network: NetworkConfigurationTypeDef
    ) -> None:
        """Twelve names are answered (two calls of at most ten); missing names are left out."""
        names = [f"svc{i}" for i in range(11)]
        for name in names:
            _create_service(aws, cluster, name, td_arn, network)
        calls: list[int] = []
        aws.ecs.meta.events.register(
            "before-parameter-build.ecs.DescribeServices",
            lambda params, **_: calls.append(len(params["services"])),
        )
        found = ecs.describe_services(cluster, [*names, "ghost"])
        assert sorted(found) == sorted(names)
        assert calls == [10, 2]


class TestTemporaryService:
    def test_the_copy_carries_the_originals_tags_and_settings_and_a_breaker(
        self, ecs: EcsApi, aws: AwsClients, cluster: str, td_arn: str, network: NetworkConfigurationTypeDef
    ) -> None:
        """create_service from a described service: its tags (read with ListTagsForResource) plus ours,
        its network and launch type (moto drops deploymentConfiguration: test_ecs_clone checks it)."""
        aws.ecs.create_service(
            cluster=cluster,
            serviceName="web",
            taskDefinition=td_arn,
            desiredCount=1,
            launchType="FARGATE",
            networkConfiguration=network,
            tags=[{"key": "team", "value": "payments"}],
        )
        template = ecs.describe_service(cluster, "web")
        ecs.create_service(cluster, template, "web-green-d1", td_arn, "arn:tg/green", 1)
        made = aws.ecs.describe_services(cluster=cluster, services=["web-green-d1"], include=["TAGS"])[
            "services"
        ][0]
        assert {(t["key"], t["value"]) for t in made["tags"]} == {
            ("team", "payments"),
            ("deploy-agent:temporary", "true"),
        }
        assert made["networkConfiguration"] == template["networkConfiguration"]
        assert made["launchType"] == "FARGATE"


class TestStoppedTasks:
    @pytest.fixture(autouse=True)
    def _manual_task_states(self, moto: str) -> Iterator[None]:
        """Keep moto's tasks in the state they are given (moto.md section 2c)."""
        base = f"{moto}/moto-api/state-manager"
        body = {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}}
        requests.post(f"{base}/set-transition", data=json.dumps(body), timeout=10).raise_for_status()
        yield
        requests.post(f"{base}/unset-transition", data=json.dumps({"model_name": "ecs::task"}), timeout=10)

    def _run(
        self,
        aws: AwsClients,
        cluster: str,
        td_arn: str,
        network: NetworkConfigurationTypeDef,
        group: str,
        count: int,
    ) -> list[str]:
        response = aws.ecs.run_task(
            cluster=cluster,
            taskDefinition=td_arn,
            count=count,
            group=group,
            launchType="FARGATE",
            networkConfiguration=network,
        )
        return [task["taskArn"] for task in response["tasks"]]

    def test_only_the_services_stopped_tasks_are_returned(
        self, ecs: EcsApi, aws: AwsClients, cluster: str, td_arn: str, network: NetworkConfigurationTypeDef
    ) -> None:
        """Stopped tasks of another service, and running tasks, are filtered out."""
        ours = self._run(aws, cluster, td_arn, network, "service:web", 2)
        theirs = self._run(aws, cluster, td_arn, network, "service:api", 2)
        self._run(aws, cluster, td_arn, network, "service:web", 1)  # still running
        for arn in [*ours, *theirs]:
            aws.ecs.stop_task(cluster=cluster, task=arn, reason="Essential container in task exited")
        stopped = ecs.list_stopped_tasks(cluster, "web")
        assert sorted(task["taskArn"] for task in stopped) == sorted(ours)
        assert {task["stoppedReason"] for task in stopped} == {"Essential container in task exited"}

    def test_limit_caps_the_result(
        self, ecs: EcsApi, aws: AwsClients, cluster: str, td_arn: str, network: NetworkConfigurationTypeDef
    ) -> None:
        """No more than ``limit`` tasks come back."""
        for arn in self._run(aws, cluster, td_arn, network, "service:web", 3):
            aws.ecs.stop_task(cluster=cluster, task=arn, reason="scaled in")
        assert len(ecs.list_stopped_tasks(cluster, "web", limit=2)) == 2

    def test_started_after_filters_and_the_latest_stopped_come_first(
        self, ecs: EcsApi, aws: AwsClients, cluster: str, td_arn: str, network: NetworkConfigurationTypeDef
    ) -> None:
        """Tasks started before ``started_after`` are left out; the rest come newest-stopped first."""
        arns = self._run(aws, cluster, td_arn, network, "service:web", 3)
        now = datetime.now(UTC)
        times = {  # arn -> (started, stopped); moto never sets these, so play ECS (moto.md section 2a)
            arns[0]: (now - timedelta(hours=2), now - timedelta(hours=1)),
            arns[1]: (now - timedelta(minutes=10), now - timedelta(minutes=5)),
            arns[2]: (now - timedelta(minutes=20), now - timedelta(minutes=1)),
        }
        backend_tasks = get_backend("ecs")[ACCOUNT][REGION].tasks[cluster]
        for arn, (started, stopped) in times.items():
            aws.ecs.stop_task(cluster=cluster, task=arn, reason="Task failed ELB health checks")
            task = next(t for t in backend_tasks.values() if t.task_arn == arn)
            setattr(task, "started_at", started)  # noqa: B010  # attributes moto serializes once set
            setattr(task, "stopped_at", stopped)  # noqa: B010
        recent = ecs.list_stopped_tasks(cluster, "web", started_after=now - timedelta(minutes=30))
        assert [task["taskArn"] for task in recent] == [arns[2], arns[1]]
        everything = ecs.list_stopped_tasks(cluster, "web")
        assert [task["taskArn"] for task in everything] == [arns[2], arns[1], arns[0]]

    def test_no_stopped_tasks_is_an_empty_list(self, ecs: EcsApi, cluster: str) -> None:
        """A service without stopped tasks gives [] (and describe_tasks of nothing makes no call)."""
        assert ecs.list_stopped_tasks(cluster, "web") == []


class _Throttling(BaseHTTPRequestHandler):
    """Answers every AWS JSON call with a ThrottlingException, as ECS does when rate limited."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def throttling_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Throttling)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class TestAwsErrorTranslation:
    def test_throttling_is_aws_throttled_and_every_attempt_is_counted(
        self, moto_server: str, throttling_endpoint: str
    ) -> None:
        """A throttled call raises AwsThrottled after the retries; on_throttle sees each attempt."""
        throttles: list[tuple[str, str]] = []
        clients = AwsClients(
            REGION,
            endpoint_url=throttling_endpoint,
            max_attempts=2,
            on_throttle=lambda service, op: throttles.append((service, op)),
        )
        with pytest.raises(AwsThrottled) as throttled:
            EcsApi(clients).describe_service("app", "web")
        assert (throttled.value.service, throttled.value.operation) == ("ecs", "DescribeServices")
        assert throttled.value.code == "ThrottlingException"
        assert throttles == [("ecs", "DescribeServices"), ("ecs", "DescribeServices")]

    def test_unreachable_endpoint_is_aws_error(self, moto_server: str) -> None:
        """A connection failure becomes AwsError with the botocore error's name as code."""
        clients = AwsClients(REGION, endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
        with pytest.raises(AwsError) as failed:
            call(clients.ecs.list_clusters)
        assert type(failed.value) is AwsError
        assert failed.value.code == "EndpointConnectionError"
        assert failed.value.operation == "ListClusters"

    def test_other_client_errors_are_aws_error_with_code(self, aws: AwsClients) -> None:
        """An error from AWS keeps its code and is neither throttled nor not-found."""
        call(aws.ecr.create_repository, repositoryName="team/web")
        with pytest.raises(AwsError) as failed:
            call(aws.ecr.create_repository, repositoryName="team/web")
        assert type(failed.value) is AwsError
        assert (failed.value.service, failed.value.operation) == ("ecr", "CreateRepository")
        assert failed.value.code == "RepositoryAlreadyExistsException"

    def test_env_max_attempts_is_honoured(self, moto_server: str, throttling_endpoint: str) -> None:
        """Without max_attempts, AWS_MAX_ATTEMPTS (1 in these tests) decides: one throttled attempt."""
        throttles: list[tuple[str, str]] = []
        clients = AwsClients(
            REGION, endpoint_url=throttling_endpoint, on_throttle=lambda s, o: throttles.append((s, o))
        )
        with pytest.raises(AwsThrottled):
            call(clients.ecs.list_clusters)
        assert throttles == [("ecs", "ListClusters")]

    def test_clients_are_made_once_per_process(self, aws: AwsClients) -> None:
        """The same client object is returned on every access in one process, one per service."""
        assert aws.ecs is aws.ecs
        assert aws.ecr is aws.ecr
        assert aws.elbv2.meta.service_model.service_name == "elbv2"
        assert aws.cloudwatch.meta.service_model.service_name == "cloudwatch"

    def test_a_forked_child_makes_its_own_clients(self, aws: AwsClients) -> None:
        """After fork (Celery prefork) the child does not reuse the parent's client."""
        parent_client = id(aws.ecs)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child answers through the pipe and leaves at once
            try:
                os.write(write_end, b"new" if id(aws.ecs) != parent_client else b"same")
            finally:
                os._exit(0)
        os.close(write_end)
        answer = os.read(read_end, 16)
        os.close(read_end)
        os.waitpid(pid, 0)
        assert answer == b"new"
