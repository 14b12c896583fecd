"""ECR's push rules in front of the sandbox's registry: a real ``docker push`` through the proxy."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import docker
import pytest
import requests

from ecs_sandbox import Sandbox
from ecs_sandbox.registry_proxy import tag_invalid_body, tag_is_immutable

pytestmark = pytest.mark.integration

_MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.oci.image.index.v1+json"
)


def _push(docker_client: docker.DockerClient, repository: str, tag: str) -> list[dict[str, Any]]:
    """Return docker's push events for ``repository:tag`` (errors included, not raised)."""
    return list(docker_client.api.push(repository, tag=tag, stream=True, decode=True))


def _error(events: list[dict[str, Any]]) -> str | None:
    return next((str(e["error"]) for e in events if "error" in e), None)


@pytest.fixture
def image(
    session_sandbox: Sandbox, docker_client: docker.DockerClient, web_image: Callable[[str, str], str]
) -> Callable[[str, str], str]:
    """Return a function tagging the web image (v-ok or crash) as <proxy>/<repo>:<tag>."""
    web_image("v1", "ok")
    web_image("v1", "crash")

    def tag(repository: str, image_tag: str, mode: str = "ok") -> str:
        local = f"{session_sandbox.registry_host}/web:v1-{mode}"
        target = f"{session_sandbox.registry_host}/{repository}"
        docker_client.images.get(local).tag(target, image_tag)
        return target

    return tag


class TestImmutableTags:
    def test_registry_host_is_the_proxy(self, sandbox: Sandbox) -> None:
        """With the AWS rules on, image references use the proxy, which answers /v2/ like a registry."""
        assert sandbox.registry.proxy is not None
        assert sandbox.registry_host == sandbox.registry.proxy.host != sandbox.registry.upstream_host
        assert requests.get(f"http://{sandbox.registry_host}/v2/", timeout=5).status_code == 200

    def test_second_push_of_a_tag_is_refused(
        self, sandbox: Sandbox, docker_client: docker.DockerClient, image: Callable[..., str]
    ) -> None:
        """IMMUTABLE: the first push lands, the second (another image) fails as ECR's does."""
        name = f"imm-{uuid.uuid4().hex[:8]}"
        sandbox.client("ecr").create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")

        first = _push(docker_client, image(name, "v1", "ok"), "v1")
        second = _push(docker_client, image(name, "v1", "crash"), "v1")

        assert _error(first) is None
        assert _error(second) == (
            f"tag invalid: The image tag 'v1' already exists in the '{name}' repository "
            "and cannot be overwritten because the repository is immutable."
        )

    def test_even_the_same_image_is_refused(
        self, sandbox: Sandbox, docker_client: docker.DockerClient, image: Callable[..., str]
    ) -> None:
        """ECR refuses a re-push of the very same image under an existing immutable tag."""
        name = f"imm-{uuid.uuid4().hex[:8]}"
        sandbox.client("ecr").create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
        target = image(name, "v1")

        assert _error(_push(docker_client, target, "v1")) is None
        assert "tag invalid" in str(_error(_push(docker_client, target, "v1")))

    def test_mutable_tags_move(
        self, sandbox: Sandbox, docker_client: docker.DockerClient, image: Callable[..., str]
    ) -> None:
        """MUTABLE: the second push wins and DescribeImages shows the tag on the new digest only."""
        name = f"mut-{uuid.uuid4().hex[:8]}"
        ecr = sandbox.client("ecr")
        ecr.create_repository(repositoryName=name, imageTagMutability="MUTABLE")

        assert _error(_push(docker_client, image(name, "v1", "ok"), "v1")) is None
        assert _error(_push(docker_client, image(name, "v1", "crash"), "v1")) is None

        crash = docker_client.images.get(f"{sandbox.registry_host}/web:v1-crash")
        tagged = [
            d
            for d in ecr.describe_images(repositoryName=name)["imageDetails"]
            if "v1" in d.get("imageTags", [])
        ]
        assert len(tagged) == 1
        assert any(digest.endswith(tagged[0]["imageDigest"]) for digest in crash.attrs["RepoDigests"])


class TestRecordedInEcr:
    def test_pushed_image_is_described_with_its_real_digest(
        self, sandbox: Sandbox, docker_client: docker.DockerClient, image: Callable[..., str]
    ) -> None:
        """DescribeImages and BatchGetImage answer with the registry's digest and the pushed manifest."""
        name = f"rec-{uuid.uuid4().hex[:8]}"
        ecr = sandbox.client("ecr")
        ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
        assert _error(_push(docker_client, image(name, "v7"), "v7")) is None

        manifest = requests.get(
            f"http://{sandbox.registry.upstream_host}/v2/{name}/manifests/v7",
            headers={"Accept": _MANIFEST_TYPES},
            timeout=10,
        )
        digest = manifest.headers["Docker-Content-Digest"]
        described = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "v7"}])["imageDetails"][0]
        fetched = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v7"}])["images"][0]

        assert described["imageDigest"] == digest == "sha256:" + hashlib.sha256(manifest.content).hexdigest()
        assert described["imageTags"] == ["v7"]
        assert json.loads(fetched["imageManifest"]) == manifest.json()

    def test_a_repository_moto_does_not_know_is_passed_through(self, sandbox: Sandbox) -> None:
        """No ECR repository: the push is the registry's business, nothing is recorded or refused."""
        assert sandbox.registry.proxy is not None
        assert sandbox.registry.proxy.repository("no-such-repo") is None


class TestDecisions:
    @pytest.mark.parametrize(
        ("mutability", "filters", "tag", "immutable"),
        [
            ("IMMUTABLE", None, "v1", True),
            ("MUTABLE", None, "v1", False),
            (
                "IMMUTABLE_WITH_EXCLUSION",
                [{"filterType": "WILDCARD", "filter": "latest*"}],
                "latest-dev",
                False,
            ),
            ("IMMUTABLE_WITH_EXCLUSION", [{"filterType": "WILDCARD", "filter": "latest*"}], "v1", True),
            (
                "MUTABLE_WITH_EXCLUSION",
                [{"filterType": "WILDCARD", "filter": "release-*"}],
                "release-1",
                True,
            ),
            ("MUTABLE_WITH_EXCLUSION", [{"filterType": "WILDCARD", "filter": "release-*"}], "dev", False),
            ("IMMUTABLE_WITH_EXCLUSION", [{"filterType": "WILDCARD", "filter": "v.1"}], "v21", True),
        ],
    )
    def test_tag_is_immutable(
        self, mutability: str, filters: list[dict[str, str]] | None, tag: str, immutable: bool
    ) -> None:
        """Exclusion filters are wildcards ('*' only) that flip the repository's setting."""
        assert tag_is_immutable(mutability, filters, tag) is immutable

    def test_error_body_is_an_oci_error(self) -> None:
        """The refusal is an OCI distribution error list with code TAG_INVALID."""
        body = json.loads(tag_invalid_body("v1", "web"))
        assert body["errors"][0]["code"] == "TAG_INVALID"
