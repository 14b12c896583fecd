"""EcrRegistry against a moto server over real HTTP."""

from __future__ import annotations

import base64
import json

import pytest

from deploy_agent.adapters.aws import AwsClients
from deploy_agent.adapters.ecr import EcrRegistry, RegistryAuth, registry_for_push
from deploy_agent.core.errors import AwsNotFound

from .conftest import ACCOUNT, REGION

pytestmark = pytest.mark.integration

LIFECYCLE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep the last 10 images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
                "action": {"type": "expire"},
            }
        ]
    }
)


@pytest.fixture
def ecr(aws: AwsClients) -> EcrRegistry:
    return EcrRegistry(aws)


class TestAuthorization:
    def test_token_is_decoded_into_user_password_and_registry_host(self, ecr: EcrRegistry) -> None:
        """The base64 'AWS:token' becomes username/password; the registry is the endpoint's host."""
        auth = ecr.authorization()
        assert auth.username == "AWS"
        assert auth.password == f"{ACCOUNT}-auth-token"
        assert auth.registry == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
        assert auth.as_docker_auth() == {
            "username": "AWS",
            "password": f"{ACCOUNT}-auth-token",
            "serveraddress": auth.registry,
        }

    def test_registry_id_selects_the_registry(self, ecr: EcrRegistry) -> None:
        """Asking for another account's registry gives that account's registry host."""
        assert ecr.authorization("210987654321").registry.startswith("210987654321.dkr.ecr.")

    def test_password_never_shows_in_repr_or_str(self) -> None:
        """repr() and str() of RegistryAuth leave the password out."""
        auth = RegistryAuth(username="AWS", password="s3cr3t-token-value", registry="r.example")
        assert "s3cr3t-token-value" not in repr(auth)
        assert "s3cr3t-token-value" not in str(auth)
        assert "r.example" in repr(auth)

    def test_token_from_moto_is_base64_of_aws_colon_token(self, aws: AwsClients) -> None:
        """The raw token is what the adapter decodes (guards the fixture's assumption)."""
        raw = aws.ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        assert base64.b64decode(raw).decode() == f"AWS:{ACCOUNT}-auth-token"


class TestEnsureRepository:
    def test_second_call_finds_what_the_first_created(self, ecr: EcrRegistry) -> None:
        """ensure_repository creates once (created True) and then finds it (created False)."""
        first = ecr.ensure_repository("team/web")
        second = ecr.ensure_repository("team/web")
        assert first.created is True
        assert second.created is False
        assert first.uri == second.uri == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/team/web"
        assert first.registry_id == ACCOUNT
        assert second.changes == ()

    def test_settings_are_applied_on_create(self, ecr: EcrRegistry, aws: AwsClients) -> None:
        """A new repository gets the requested scanOnPush and tag mutability."""
        ecr.ensure_repository("team/api", scan_on_push=True, tag_mutability="IMMUTABLE")
        repo = aws.ecr.describe_repositories(repositoryNames=["team/api"])["repositories"][0]
        assert repo["imageScanningConfiguration"]["scanOnPush"] is True
        assert repo["imageTagMutability"] == "IMMUTABLE"

    def test_settings_that_differ_are_updated_on_an_existing_repository(
        self, ecr: EcrRegistry, aws: AwsClients
    ) -> None:
        """An existing repository is brought to the requested settings and the changes are named."""
        aws.ecr.create_repository(repositoryName="team/old")
        repo = ecr.ensure_repository("team/old", scan_on_push=True, tag_mutability="IMMUTABLE")
        assert repo.created is False
        assert repo.changes == ("scanOnPush: False -> True", "imageTagMutability: MUTABLE -> IMMUTABLE")
        stored = aws.ecr.describe_repositories(repositoryNames=["team/old"])["repositories"][0]
        assert stored["imageScanningConfiguration"]["scanOnPush"] is True
        assert stored["imageTagMutability"] == "IMMUTABLE"

    def test_unspecified_settings_are_left_alone(self, ecr: EcrRegistry, aws: AwsClients) -> None:
        """None for a setting keeps the existing repository's value."""
        aws.ecr.create_repository(
            repositoryName="team/keep",
            imageScanningConfiguration={"scanOnPush": True},
            imageTagMutability="IMMUTABLE",
        )
        assert ecr.ensure_repository("team/keep").changes == ()
        stored = aws.ecr.describe_repositories(repositoryNames=["team/keep"])["repositories"][0]
        assert stored["imageTagMutability"] == "IMMUTABLE"

    def test_missing_without_create_is_not_found(self, ecr: EcrRegistry, aws: AwsClients) -> None:
        """A missing repository with create=False raises AwsNotFound naming it, and creates nothing."""
        with pytest.raises(AwsNotFound, match="team/ghost") as missing:
            ecr.ensure_repository("team/ghost", create=False)
        assert missing.value.service == "ecr"
        assert missing.value.code == "RepositoryNotFoundException"
        assert aws.ecr.describe_repositories()["repositories"] == []


class TestUserSettingsKept:
    """A message that leaves a setting out never changes it (issue 9, worker point 4)."""

    def test_a_hardened_repository_keeps_immutable_tags_and_scan_on_push(
        self, ecr: EcrRegistry, aws: AwsClients
    ) -> None:
        """ensure_repository with no settings sends no Put* call: IMMUTABLE and scanOnPush stay."""
        aws.ecr.create_repository(
            repositoryName="team/hard",
            imageScanningConfiguration={"scanOnPush": True},
            imageTagMutability="IMMUTABLE",
        )
        repo = ecr.ensure_repository("team/hard", scan_on_push=None, tag_mutability=None)
        assert repo.changes == ()
        assert repo.tag_mutability == "IMMUTABLE"
        stored = aws.ecr.describe_repositories(repositoryNames=["team/hard"])["repositories"][0]
        assert stored["imageScanningConfiguration"]["scanOnPush"] is True
        assert stored["imageTagMutability"] == "IMMUTABLE"

    def test_exclusion_filters_survive_a_deployment_that_does_not_name_them(
        self, ecr: EcrRegistry, aws: AwsClients
    ) -> None:
        """An IMMUTABLE_WITH_EXCLUSION repository keeps its mode and filters, and reports them."""
        aws.ecr.create_repository(
            repositoryName="team/excl",
            imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
            imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "dev-*"}],
        )
        repo = ecr.ensure_repository("team/excl")
        assert (repo.tag_mutability, repo.exclusion_filters, repo.changes) == (
            "IMMUTABLE_WITH_EXCLUSION",
            ("dev-*",),
            (),
        )
        stored = aws.ecr.describe_repositories(repositoryNames=["team/excl"])["repositories"][0]
        assert stored["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "dev-*"}]

    def test_new_filters_are_sent_with_the_mode(self, ecr: EcrRegistry, aws: AwsClients) -> None:
        """Asking for WITH_EXCLUSION with filters sets both in one PutImageTagMutability."""
        aws.ecr.create_repository(repositoryName="team/grow", imageTagMutability="IMMUTABLE")
        filters = [{"filterType": "WILDCARD", "filter": "pr-*"}]
        repo = ecr.ensure_repository(
            "team/grow", tag_mutability="IMMUTABLE_WITH_EXCLUSION", exclusion_filters=filters
        )
        assert repo.changes == ("imageTagMutability: IMMUTABLE -> IMMUTABLE_WITH_EXCLUSION",)
        stored = aws.ecr.describe_repositories(repositoryNames=["team/grow"])["repositories"][0]
        assert stored["imageTagMutabilityExclusionFilters"] == filters

    def test_a_new_repository_gets_ecr_defaults_for_what_is_not_given(
        self, ecr: EcrRegistry, aws: AwsClients
    ) -> None:
        """Created with no settings: MUTABLE and no scan on push, ECR's defaults."""
        repo = ecr.ensure_repository("team/fresh")
        assert repo.created
        assert repo.tag_mutability == "MUTABLE"
        stored = aws.ecr.describe_repositories(repositoryNames=["team/fresh"])["repositories"][0]
        assert stored["imageTagMutability"] == "MUTABLE"
        assert stored["imageScanningConfiguration"]["scanOnPush"] is False


class TestImageByTag:
    def test_a_tag_gives_its_digest_and_the_config_digest_of_its_manifest(
        self, ecr: EcrRegistry, aws: AwsClients
    ) -> None:
        """BatchGetImage by tag: the manifest digest ECR stores, and the manifest's config.digest."""
        aws.ecr.create_repository(repositoryName="team/img")
        config = "sha256:" + "c" * 64
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7,
                "digest": config,
            },
            "layers": [],
        }
        put = aws.ecr.put_image(repositoryName="team/img", imageManifest=json.dumps(manifest), imageTag="v1")
        found = ecr.image_by_tag("team/img", "v1")
        assert found is not None
        assert found.digest == put["image"]["imageId"]["imageDigest"]
        assert found.config_digest == config

    def test_a_free_tag_is_none(self, ecr: EcrRegistry, aws: AwsClients) -> None:
        """A tag the repository does not hold gives None (BatchGetImage lists it under failures)."""
        aws.ecr.create_repository(repositoryName="team/img")
        assert ecr.image_by_tag("team/img", "nope") is None


class TestLifecyclePolicy:
    def test_policy_is_stored(self, ecr: EcrRegistry, aws: AwsClients) -> None:
        """put_lifecycle_policy stores the policy text on the repository."""
        ecr.ensure_repository("team/web")
        ecr.put_lifecycle_policy("team/web", LIFECYCLE)
        stored = aws.ecr.get_lifecycle_policy(repositoryName="team/web")["lifecyclePolicyText"]
        assert json.loads(stored) == json.loads(LIFECYCLE)

    def test_policy_on_a_missing_repository_is_not_found(self, ecr: EcrRegistry) -> None:
        """A lifecycle policy for a repository that does not exist raises AwsNotFound."""
        with pytest.raises(AwsNotFound) as missing:
            ecr.put_lifecycle_policy("team/ghost", LIFECYCLE)
        assert missing.value.operation == "PutLifecyclePolicy"


@pytest.mark.parametrize(
    ("uri", "override", "expected"),
    [
        pytest.param(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/web",
            "127.0.0.1:5000",
            "127.0.0.1:5000/team/web",
            id="the ECR host is replaced by the override",
        ),
        pytest.param(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/web",
            None,
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/web",
            id="no override leaves the URI as it is",
        ),
        pytest.param(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/web",
            "http://127.0.0.1:5000/",
            "127.0.0.1:5000/web",
            id="a scheme and trailing slash on the override are dropped",
        ),
        pytest.param(
            "web", "127.0.0.1:5000", "127.0.0.1:5000/web", id="a bare name is put under the override"
        ),
    ],
)
def test_registry_for_push(uri: str, override: str | None, expected: str) -> None:
    """registry_for_push swaps only the registry host."""
    assert registry_for_push(uri, override) == expected
