"""DockerBuilder against the real Docker engine and a real registry."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from deploy_agent.adapters.docker_builder import DockerBuilder
from deploy_agent.adapters.ecr import RegistryAuth
from deploy_agent.core.errors import BuildFailed, PushFailed
from tests.support import free_port

from .conftest import Registry

pytestmark = pytest.mark.integration


@pytest.fixture
def repository(docker_api: docker.APIClient) -> Iterator[str]:
    """A fresh local repository name; every image tagged into it is untagged afterwards."""
    name = f"deploy-agent-test/web-{uuid.uuid4().hex[:10]}"
    yield name
    _untag_all(docker_api, name)


def _untag_all(api: docker.APIClient, repository: str) -> None:
    for image in api.images(name=repository):
        for ref in image.get("RepoTags") or []:
            if ref.rsplit(":", 1)[0] == repository:
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_image(ref, force=True)


@pytest.fixture
def builder(docker_api: docker.APIClient) -> DockerBuilder:
    return DockerBuilder(docker_api)


def _dockerfile_dir(tmp_path: Path, base_image: str, body: str) -> Path:
    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\n{body}\n")
    return tmp_path


def _get_text(url: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.get(url, timeout=1)
            response.raise_for_status()
            return response.text
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class TestBuild:
    def test_multi_stage_build_arg_reaches_the_running_image(
        self,
        builder: DockerBuilder,
        docker_api: docker.APIClient,
        web_app_dir: Path,
        base_image: str,
        repository: str,
    ) -> None:
        """A multi-stage build with VERSION and target 'app' gives an image whose /version is VERSION."""
        version = f"1.2.{uuid.uuid4().hex[:6]}"
        lines: list[str] = []
        built = builder.build(
            web_app_dir,
            "Dockerfile",
            f"{repository}:v1",
            build_args={"VERSION": version, "MODE": "ok", "BASE": base_image},
            target="app",
            on_log=lines.append,
        )
        assert built.image_id.startswith("sha256:")
        assert built.tag == f"{repository}:v1"
        assert built.duration_seconds > 0
        assert any(line.startswith("Step ") for line in lines)
        assert builder.inspect(f"{repository}:v1")["Id"] == built.image_id

        port = free_port()
        container = docker_api.create_container(
            built.image_id,
            environment={"PORT": str(port)},
            host_config=docker_api.create_host_config(network_mode="host"),
        )
        try:
            docker_api.start(container)
            assert _get_text(f"http://127.0.0.1:{port}/version").strip() == version
        finally:
            docker_api.remove_container(container, force=True)

    def test_log_lines_arrive_while_the_build_runs(
        self, builder: DockerBuilder, tmp_path: Path, base_image: str, repository: str
    ) -> None:
        """on_log gets each RUN output line when it is printed, not all at the end."""
        marker = uuid.uuid4().hex  # defeats the build cache
        context = _dockerfile_dir(
            tmp_path, base_image, f"RUN echo first-{marker} && sleep 1 && echo second-{marker}"
        )
        seen: dict[str, float] = {}

        def on_log(line: str) -> None:
            seen.setdefault(line.strip(), time.monotonic())

        builder.build(context, "Dockerfile", f"{repository}:log", on_log=on_log)
        assert seen[f"second-{marker}"] - seen[f"first-{marker}"] >= 0.8

    def test_failing_run_raises_build_failed_with_the_builders_line(
        self, builder: DockerBuilder, tmp_path: Path, base_image: str, repository: str
    ) -> None:
        """A RUN that exits 3 raises BuildFailed whose message is the builder's own error line."""
        context = _dockerfile_dir(tmp_path, base_image, "RUN exit 3")
        lines: list[str] = []
        with pytest.raises(BuildFailed) as failed:
            builder.build(context, "Dockerfile", f"{repository}:bad", on_log=lines.append)
        assert failed.value.message == "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
        assert any("RUN exit 3" in line for line in lines)

    def test_labels_are_on_the_image_and_cache_from_is_accepted(
        self, builder: DockerBuilder, tmp_path: Path, base_image: str, repository: str
    ) -> None:
        """Labels given to build are on the inspected image; cache_from naming a local image works."""
        context = _dockerfile_dir(tmp_path, base_image, f"RUN echo {uuid.uuid4().hex} > /marker")
        first = builder.build(context, "Dockerfile", f"{repository}:one")
        lines: list[str] = []
        second = builder.build(
            context,
            "Dockerfile",
            f"{repository}:two",
            labels={"org.example.team": "payments", "deploy-agent.test": "yes"},
            cache_from=[f"{repository}:one"],
            on_log=lines.append,
        )
        labels = builder.inspect(second.image_id)["Config"]["Labels"]
        assert labels["org.example.team"] == "payments"
        assert labels["deploy-agent.test"] == "yes"
        assert any("Using cache" in line for line in lines)
        assert second.image_id != first.image_id

    def test_missing_context_directory_is_build_failed(self, builder: DockerBuilder, tmp_path: Path) -> None:
        """A context directory that does not exist raises BuildFailed naming it."""
        with pytest.raises(BuildFailed, match="nowhere"):
            builder.build(tmp_path / "nowhere", "Dockerfile", "x:y")

    def test_missing_dockerfile_is_build_failed(self, builder: DockerBuilder, tmp_path: Path) -> None:
        """A Dockerfile missing from the context raises BuildFailed naming the field."""
        with pytest.raises(BuildFailed, match=r"build\.dockerfile: is not a file in the build context"):
            builder.build(tmp_path, "Dockerfile.prod", "x:y")


class TestPush:
    def test_push_returns_the_registrys_digest(
        self,
        builder: DockerBuilder,
        docker_api: docker.APIClient,
        tmp_path: Path,
        base_image: str,
        registry: Registry,
        repository: str,
    ) -> None:
        """The digest push returns equals the registry's Docker-Content-Digest for the tag."""
        context = _dockerfile_dir(tmp_path, base_image, f"RUN echo {uuid.uuid4().hex} > /marker")
        built = builder.build(context, "Dockerfile", f"{repository}:local")
        remote = f"{registry.host}/team/{repository.rsplit('/', 1)[1]}"
        assert builder.tag(built.image_id, remote, "v1") == f"{remote}:v1"
        progress: list[str] = []
        try:
            # the sandbox registry ignores credentials; sending them exercises the X-Registry-Auth path
            auth = RegistryAuth(username="AWS", password="not-checked", registry=registry.host)
            digest = builder.push(remote, "v1", auth=auth, on_progress=progress.append)
        finally:
            _untag_all(docker_api, remote)
        assert digest.startswith("sha256:")
        manifest = requests.get(
            f"{registry.url}/v2/team/{repository.rsplit('/', 1)[1]}/manifests/v1",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            timeout=10,
        )
        assert manifest.status_code == 200
        assert manifest.headers["Docker-Content-Digest"] == digest
        assert any("Pushed" in line or "already exists" in line for line in progress)

    def test_push_to_a_closed_port_is_push_failed(
        self, builder: DockerBuilder, docker_api: docker.APIClient, base_image: str
    ) -> None:
        """Pushing to a registry port where nothing listens raises PushFailed."""
        remote = f"127.0.0.1:{free_port()}/team/nowhere"
        docker_api.tag(base_image, remote, "v1")
        try:
            with pytest.raises(PushFailed, match=r"127\.0\.0\.1"):
                builder.push(remote, "v1")
        finally:
            _untag_all(docker_api, remote)

    def test_push_of_an_image_missing_locally_is_push_failed(
        self, builder: DockerBuilder, registry: Registry
    ) -> None:
        """Pushing a tag the engine does not have raises PushFailed."""
        with pytest.raises(PushFailed):
            builder.push(f"{registry.host}/team/absent-{uuid.uuid4().hex[:8]}", "v1")


class TestRemoveOldImages:
    def test_keeps_the_newest_n_and_the_protected_ones(
        self,
        builder: DockerBuilder,
        docker_api: docker.APIClient,
        tmp_path: Path,
        base_image: str,
        repository: str,
    ) -> None:
        """Of four images, keep=2 removes the oldest two except the protected one."""
        context = _dockerfile_dir(tmp_path, base_image, f"RUN echo {uuid.uuid4().hex} > /marker")
        ids = []
        for number in range(4):
            if number:
                time.sleep(1.05)  # image Created times have one-second resolution
            ids.append(
                builder.build(
                    context, "Dockerfile", f"{repository}:b{number}", labels={"n": str(number)}
                ).image_id
            )
        removed = builder.remove_old_images(repository, keep=2, protect={f"{repository}:b0"})
        assert removed == [ids[1]]
        left = {tag for image in docker_api.images(name=repository) for tag in image["RepoTags"]}
        assert left == {f"{repository}:b0", f"{repository}:b2", f"{repository}:b3"}

    def test_images_used_by_a_container_are_skipped(
        self,
        builder: DockerBuilder,
        docker_api: docker.APIClient,
        tmp_path: Path,
        base_image: str,
        repository: str,
    ) -> None:
        """An image a container still uses is left alone instead of failing the cleanup."""
        context = _dockerfile_dir(tmp_path, base_image, f"RUN echo {uuid.uuid4().hex} > /marker")
        old = builder.build(context, "Dockerfile", f"{repository}:old", labels={"n": "old"})
        time.sleep(1.05)
        builder.build(context, "Dockerfile", f"{repository}:new", labels={"n": "new"})
        # a stopped container still holds its image; with the only tag gone the engine refuses (409)
        container = docker_api.create_container(
            old.image_id, command=["true"], host_config=docker_api.create_host_config(network_mode="host")
        )
        try:
            removed = builder.remove_old_images(repository, keep=1, protect=set())
            tags = {tag for image in docker_api.images(name=repository) for tag in image["RepoTags"]}
        finally:
            docker_api.remove_container(container, force=True)
        assert removed == []
        assert tags == {f"{repository}:old", f"{repository}:new"}
