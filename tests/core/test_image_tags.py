"""Whether a build may be pushed under its tag: ECR tag immutability and the same-image check."""

from __future__ import annotations

import json

import pytest

from deploy_agent.core.image_tags import (
    RemoteImage,
    TagDecision,
    decide_tag_push,
    is_tag_immutable,
    manifest_config_digest,
)

LOCAL = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64
PUSHED = "sha256:" + "9" * 64


@pytest.mark.parametrize(
    ("mutability", "filters", "tag", "immutable"),
    [
        pytest.param("MUTABLE", [], "v1", False, id="a MUTABLE repository overwrites tags"),
        pytest.param("IMMUTABLE", [], "v1", True, id="an IMMUTABLE repository refuses every tag"),
        pytest.param(
            "IMMUTABLE_WITH_EXCLUSION", ["dev-*"], "dev-3", False, id="an excluded tag stays mutable"
        ),
        pytest.param("IMMUTABLE_WITH_EXCLUSION", ["dev-*"], "v1", True, id="other tags are immutable"),
        pytest.param(
            "MUTABLE_WITH_EXCLUSION", ["release-*"], "release-1", True, id="an excluded tag is immutable"
        ),
        pytest.param("MUTABLE_WITH_EXCLUSION", ["release-*"], "v1", False, id="other tags stay mutable"),
        pytest.param(
            "IMMUTABLE_WITH_EXCLUSION", ["latest"], "latest", False, id="a filter without * matches exactly"
        ),
        pytest.param(
            "IMMUTABLE_WITH_EXCLUSION", ["latest"], "latest2", True, id="and matches nothing longer"
        ),
    ],
)
def test_tag_immutability_follows_ecr(mutability: str, filters: list[str], tag: str, immutable: bool) -> None:
    """is_tag_immutable reads the repository's mutability and exclusion wildcards as ECR does."""
    assert is_tag_immutable(mutability, filters, tag) is immutable


@pytest.mark.parametrize(
    ("remote", "immutable", "repo_digests", "decision"),
    [
        pytest.param(None, True, [], "push", id="a free tag is pushed"),
        pytest.param(RemoteImage(OTHER, OTHER), False, [], "push", id="a mutable tag is overwritten"),
        pytest.param(RemoteImage(PUSHED, LOCAL), True, [], "reuse", id="the same image config is reused"),
        pytest.param(
            RemoteImage(PUSHED, None),
            True,
            [f"r.example/web@{PUSHED}"],
            "reuse",
            id="a manifest list whose digest the engine knows is reused",
        ),
        pytest.param(
            RemoteImage(PUSHED, OTHER), True, [], "conflict", id="another image under the tag conflicts"
        ),
        pytest.param(RemoteImage(PUSHED, None), True, [], "conflict", id="an unknown image conflicts"),
    ],
)
def test_an_existing_immutable_tag_is_reused_only_for_our_image(
    remote: RemoteImage | None, immutable: bool, repo_digests: list[str], decision: TagDecision
) -> None:
    """decide_tag_push compares ECR's config digest with the local image id, then RepoDigests."""
    assert decide_tag_push(remote, immutable, LOCAL, repo_digests) == decision


def test_the_config_digest_is_read_from_schema2_and_oci_manifests_only() -> None:
    """A single-image manifest gives config.digest; an index, or a text that is not JSON, gives None."""
    single = {"schemaVersion": 2, "config": {"digest": LOCAL}, "layers": []}
    index = {"schemaVersion": 2, "manifests": [{"digest": PUSHED}]}
    assert manifest_config_digest(json.dumps(single)) == LOCAL
    assert manifest_config_digest(json.dumps(index)) is None
    assert manifest_config_digest("not json") is None
