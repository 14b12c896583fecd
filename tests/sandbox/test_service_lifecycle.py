"""ECS service lifecycle behind the sandbox's ALB: scale to zero, draining, DeleteService, the seed's bug."""

from __future__ import annotations

import concurrent.futures
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import requests

from ecs_sandbox import BlueGreenSetup, Sandbox, provision_blue_green, provision_green_service
from ecs_sandbox.containers import LABEL
from ecs_sandbox.load_balancer import TARGET_HEADER, target_group_name
from tests.support import wait_until

from .traffic import Load

pytestmark = pytest.mark.integration

CLUSTER, SERVICE, GREEN = "app", "web", "web-green"
SLOW_IMAGE = "deploy-agent/sandbox-slow:test"


def _status(sandbox: Sandbox, service: str) -> str:
    described = sandbox.client("ecs").describe_services(cluster=CLUSTER, services=[service])["services"]
    return str(described[0]["status"])


def _states(sandbox: Sandbox, target_group_arn: str) -> list[str]:
    health = sandbox.client("elbv2").describe_target_health(TargetGroupArn=target_group_arn)
    return [t["TargetHealth"]["State"] for t in health["TargetHealthDescriptions"]]


def _containers(client: docker.DockerClient, service: str, sandbox: Sandbox) -> int:
    """Return how many of this sandbox's containers of the service run (other sandboxes share the engine)."""
    labels = [f"deploy-agent.service={service}", f"{LABEL}={sandbox.scheduler.containers.instance}"]
    # A container the scheduler removes between docker-py's list and its inspect of each is gone:
    # not counted (without ignore_removed the inspect raised NotFound in a fresh-clone CI run).
    running = client.containers.list(filters={"label": labels, "status": "running"}, ignore_removed=True)
    return len(running)


def _forward(sandbox: Sandbox, listener_arn: str, target_group_arn: str) -> None:
    sandbox.client("elbv2").modify_listener(
        ListenerArn=listener_arn, DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group_arn}]
    )


def _weigh(sandbox: Sandbox, listener_arn: str, weights: dict[str, int]) -> None:
    groups = [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in weights.items()]
    sandbox.client("elbv2").modify_listener(
        ListenerArn=listener_arn,
        DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
    )


def _with_green(sandbox: Sandbox, web_image: Callable[..., str]) -> BlueGreenSetup:
    setup = provision_blue_green(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
    provision_green_service(
        sandbox, setup, GREEN, setup.green_target_group_arn, image=web_image("v2"), timeout_seconds=30
    )
    return setup


@pytest.fixture(scope="module")
def slow_image(docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox httpd app with /health and a CGI /cgi-bin/slow?SECONDS that holds the request."""
    root: Path = tmp_path_factory.mktemp("slow-app")
    (root / "www" / "cgi-bin").mkdir(parents=True)
    (root / "www" / "health").write_text("ok\n")
    slow = root / "www" / "cgi-bin" / "slow"
    slow.write_text(
        '#!/bin/sh\nsleep "${QUERY_STRING:-1}"\nprintf "Content-Type: text/plain\\r\\n\\r\\nslow\\n"\n'
    )
    slow.chmod(0o755)
    (root / "Dockerfile").write_text(
        textwrap.dedent(
            """\
            FROM deploy-agent/busybox:1
            COPY www /www
            CMD ["/bin/sh", "-c", "exec httpd -f -p 127.0.0.1:${PORT:-8080} -h /www"]
            """
        )
    )
    for event in docker_client.api.build(path=str(root), tag=SLOW_IMAGE, network_mode="host", decode=True):
        assert "error" not in event, event
    return SLOW_IMAGE


class TestGreenService:
    def test_service_created_later_serves_from_its_target_group_and_scales_to_zero(
        self, sandbox: Sandbox, web_image: Callable[..., str], docker_client: docker.DockerClient
    ) -> None:
        """A service created after start completes in its group; desiredCount 0 drains, then stops it."""
        setup = _with_green(sandbox, web_image)
        assert _states(sandbox, setup.green_target_group_arn) == ["healthy", "healthy"]
        assert requests.get(f"{setup.test_url}/version", timeout=5).text.strip() == "v2"
        sandbox.client("ecs").update_service(cluster=CLUSTER, service=GREEN, desiredCount=0)
        wait_until(
            lambda: _states(sandbox, setup.green_target_group_arn) == ["draining", "draining"],
            what="draining",
        )
        assert _containers(docker_client, GREEN, sandbox) == 2  # the containers outlive the drain
        assert requests.get(f"{setup.test_url}/version", timeout=5).status_code == 503
        wait_until(lambda: _states(sandbox, setup.green_target_group_arn) == [], what="the drain to end")
        wait_until(lambda: _containers(docker_client, GREEN, sandbox) == 0, what="the containers to stop")
        assert _status(sandbox, GREEN) == "ACTIVE"


class TestDraining:
    def test_in_flight_request_finishes_on_a_draining_target_and_new_ones_go_elsewhere(
        self, sandbox: Sandbox, slow_image: str, docker_client: docker.DockerClient
    ) -> None:
        """Scaling 2 -> 1 drains a target: its slow request in flight gets 200, new ones go to the other."""
        setup = provision_blue_green(
            sandbox,
            CLUSTER,
            SERVICE,
            slow_image,
            # 4 s of sandbox time, in the AWS seconds the group is configured with
            deregistration_delay_seconds=round(4 / sandbox.scheduler.realism.time_scale),
            timeout_seconds=30,
        )
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            slow = [pool.submit(requests.get, f"{setup.url}/cgi-bin/slow?2", timeout=10) for _ in range(2)]
            time.sleep(0.3)  # both requests are in flight, one on each target (round robin)
            sandbox.client("ecs").update_service(cluster=CLUSTER, service=SERVICE, desiredCount=1)
            wait_until(
                lambda: sorted(_states(sandbox, setup.target_group_arn)) == ["draining", "healthy"],
                what="one target draining, one healthy",
            )
            fresh = {requests.get(f"{setup.url}/health", timeout=5).headers[TARGET_HEADER] for _ in range(10)}
            answers = [future.result() for future in slow]
        assert [a.status_code for a in answers] == [200, 200]
        assert {a.headers[TARGET_HEADER] for a in answers} > fresh  # two targets served; one is left
        assert len(fresh) == 1
        assert _containers(docker_client, SERVICE, sandbox) == 2  # the draining task still runs (delay 4 s)
        wait_until(
            lambda: _states(sandbox, setup.target_group_arn) == ["healthy"], timeout=10, what="the drain"
        )
        wait_until(lambda: _containers(docker_client, SERVICE, sandbox) == 1, what="the drained task to stop")


class TestDeleteService:
    def test_delete_drains_the_service_then_makes_it_inactive(
        self, sandbox: Sandbox, web_image: Callable[..., str], docker_client: docker.DockerClient
    ) -> None:
        """delete_service(force=True) answers DRAINING, drains the targets, stops the tasks, then INACTIVE."""
        setup = _with_green(sandbox, web_image)
        reply = sandbox.client("ecs").delete_service(cluster=CLUSTER, service=GREEN, force=True)["service"]
        assert reply["status"] == "DRAINING"
        wait_until(
            lambda: _states(sandbox, setup.green_target_group_arn) == ["draining", "draining"],
            what="draining",
        )
        wait_until(lambda: _status(sandbox, GREEN) == "INACTIVE", what="INACTIVE")
        assert _containers(docker_client, GREEN, sandbox) == 0
        assert _states(sandbox, setup.green_target_group_arn) == []

    def test_deleting_the_service_the_listener_still_forwards_to_drops_requests(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """The seed's order: delete green while the listener forwards only to it -> requests fail with 503."""
        setup = _with_green(sandbox, web_image)
        _forward(sandbox, setup.listener_arn, setup.green_target_group_arn)
        with Load(f"{setup.url}/version", rate=50) as load:
            time.sleep(0.5)
            deleted_at = time.monotonic()
            sandbox.client("ecs").delete_service(cluster=CLUSTER, service=GREEN, force=True)
            wait_until(lambda: _status(sandbox, GREEN) == "INACTIVE", what="INACTIVE")
            time.sleep(0.3)
        failures = load.failures()
        print(f"statuses: {dict(load.statuses())}")
        assert failures, "deleting the only service behind the listener lost no request"
        assert {f.status for f in failures} == {503}
        assert min(f.sent_at for f in failures) >= deleted_at
        assert load.bodies().keys() == {"v2"}

    def test_moving_the_listener_back_before_deleting_loses_no_request(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """The right order: listener to green, back to blue, then delete green: no request fails.

        As the worker shifts it: a weighted forward that keeps blue at weight 0, so blue stays in use
        and health-checked (a group no listener uses is ``unused`` and starts over from ``initial``).
        """
        setup = _with_green(sandbox, web_image)
        blue, green = setup.target_group_arn, setup.green_target_group_arn
        with Load(f"{setup.url}/version", rate=50) as load:
            time.sleep(0.3)
            _weigh(sandbox, setup.listener_arn, {green: 100, blue: 0})
            wait_until(lambda: load.bodies()["v2"] >= 10, what="green to serve")
            _weigh(sandbox, setup.listener_arn, {blue: 100, green: 0})
            sandbox.client("ecs").delete_service(cluster=CLUSTER, service=GREEN, force=True)
            wait_until(lambda: _status(sandbox, GREEN) == "INACTIVE", what="INACTIVE")
            time.sleep(0.3)
        print(f"statuses: {dict(load.statuses())}; versions: {dict(load.bodies())}")
        assert load.failures() == []
        assert load.bodies().keys() == {"v1", "v2"}
        assert len(load.outcomes) >= 50
        blue = target_group_name(setup.target_group_arn)
        assert load.outcomes[-1].target_group == blue
