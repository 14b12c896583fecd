"""``build.dockerfile`` stays inside the build context: at accept time and again in the builder.

The review's finding 1: a Dockerfile path outside the context made docker-py pack any host file
into the build, and the engine's parse error quoted its first line back into the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from deploy_agent.adapters.build_context import (
    DockerfileOutsideContext,
    confine_dockerfile,
    resolve_build_context,
)
from deploy_agent.adapters.docker_builder import DockerBuilder
from deploy_agent.core.errors import BuildFailed, RequestRejected
from deploy_agent.models.parsing import parse_request
from tests.support import free_port

if TYPE_CHECKING:  # docker-py is imported by the one test that needs it: the rest are unit tests
    import docker

SECRET = "root-secret-line-7f3a"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A build root with a context ``app`` and, outside the context, a file holding a secret."""
    root = tmp_path / "root"
    context = root / "app"
    (context / "docker").mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM scratch\n")
    (context / "docker" / "Dockerfile.prod").write_text("FROM scratch\n")
    (root / "credentials").write_text(f"{SECRET}\n")
    (tmp_path / "outside").write_text(f"{SECRET}\n")
    return root, context


class TestConfineDockerfile:
    def test_files_inside_the_context_give_their_relative_path(self, layout: tuple[Path, Path]) -> None:
        _, context = layout
        assert confine_dockerfile(context, "Dockerfile") == "Dockerfile"
        assert confine_dockerfile(context, "docker/Dockerfile.prod") == "docker/Dockerfile.prod"
        assert confine_dockerfile(context, "./docker/./Dockerfile.prod") == "docker/Dockerfile.prod"

    def test_a_symlink_inside_the_context_is_followed(self, layout: tuple[Path, Path]) -> None:
        _, context = layout
        (context / "Dockerfile.link").symlink_to("docker/Dockerfile.prod")
        assert confine_dockerfile(context, "Dockerfile.link") == "docker/Dockerfile.prod"

    @pytest.mark.parametrize(
        ("dockerfile", "problem"),
        [
            ("/etc/passwd", "must be a path relative to the build context"),
            ("../credentials", "must not contain '..'"),
            ("docker/../../credentials", "must not contain '..'"),
            ("Docker\x00file", "must not contain NUL bytes"),
            ("", "must not be empty"),
            ("missing", "is not a file in the build context"),
            ("docker", "is not a file in the build context"),
        ],
    )
    def test_paths_outside_or_odd_are_refused(
        self, layout: tuple[Path, Path], dockerfile: str, problem: str
    ) -> None:
        _, context = layout
        with pytest.raises(DockerfileOutsideContext, match=problem) as caught:
            confine_dockerfile(context, dockerfile)
        assert str(caught.value).startswith("build.dockerfile: ")

    def test_a_symlink_leading_out_is_refused(self, layout: tuple[Path, Path], tmp_path: Path) -> None:
        _, context = layout
        (context / "Dockerfile.evil").symlink_to(tmp_path / "outside")
        (context / "dir-out").symlink_to(tmp_path)
        for name in ("Dockerfile.evil", "dir-out/outside"):
            with pytest.raises(DockerfileOutsideContext, match="must name a file inside the build context"):
                confine_dockerfile(context, name)

    def test_a_symlink_loop_is_refused(self, layout: tuple[Path, Path]) -> None:
        _, context = layout
        (context / "loop").symlink_to("loop")
        with pytest.raises(DockerfileOutsideContext):
            confine_dockerfile(context, "loop")


class TestAtAcceptTime:
    def test_the_model_refuses_absolute_paths_dotdot_and_nul(self) -> None:
        """Lexical problems are validation errors naming build.dockerfile (no file system needed)."""
        for dockerfile in ("/etc/passwd", "../../outside/credentials", "a\x00b", "\\\\server\\x"):
            message = {
                "cluster_name": "c",
                "service_name": "s",
                "image": {"repository": "web"},
                "build": {"context": "app", "dockerfile": dockerfile},
            }
            with pytest.raises(RequestRejected) as caught:
                parse_request(message)
            assert [e["field"] for e in caught.value.errors] == ["build.dockerfile"]

    def test_resolve_build_context_refuses_a_symlink_out(
        self, layout: tuple[Path, Path], tmp_path: Path
    ) -> None:
        root, context = layout
        (context / "Dockerfile.evil").symlink_to(tmp_path / "outside")
        with pytest.raises(RequestRejected) as caught:
            resolve_build_context(root, "app", "Dockerfile.evil")
        assert caught.value.errors == [
            {
                "field": "build.dockerfile",
                "problem": "must name a file inside the build context (a symlink may not lead out)",
            }
        ]
        assert SECRET not in caught.value.message
        assert resolve_build_context(root, "app", "docker/Dockerfile.prod") == context.resolve()


class TestInTheBuilder:
    def test_refused_before_any_engine_call(self, layout: tuple[Path, Path], tmp_path: Path) -> None:
        """The engine here is a closed port: the error is the Dockerfile's, not 'cannot reach'."""
        import docker  # a client only: no engine answers on a free port

        _, context = layout
        (context / "Dockerfile.evil").symlink_to(tmp_path / "outside")
        api = docker.APIClient(base_url=f"tcp://127.0.0.1:{free_port()}", version="1.41", timeout=2)
        builder = DockerBuilder(api)
        for dockerfile in ("/etc/passwd", "../credentials", "Dockerfile.evil", "Docker\x00file"):
            with pytest.raises(BuildFailed, match=r"^build\.dockerfile: ") as caught:
                builder.build(context, dockerfile, "x:y")
            assert SECRET not in caught.value.message

    @pytest.mark.integration
    def test_the_engine_gets_the_relative_path(
        self, docker_api: docker.APIClient, base_image: str, tmp_path: Path
    ) -> None:
        """A Dockerfile in a subdirectory, reached through a symlink at the top, builds for real."""
        context = tmp_path / "ctx"
        (context / "docker").mkdir(parents=True)
        (context / "docker" / "Dockerfile.prod").write_text(f"FROM {base_image}\nLABEL confined=yes\n")
        (context / "Dockerfile").symlink_to("docker/Dockerfile.prod")
        built = DockerBuilder(docker_api).build(context, "Dockerfile", "")
        try:
            labels = docker_api.inspect_image(built.image_id)["Config"]["Labels"]  # type: ignore[no-untyped-call]
            assert labels["confined"] == "yes"
        finally:
            docker_api.remove_image(built.image_id, force=True)
