"""``resolve_build_context``: a message may only build from a directory under the worker's build root."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy_agent.adapters.build_context import resolve_build_context
from deploy_agent.core.errors import RequestRejected


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A build root with a nested app, a file, and a directory beside it (outside the root)."""
    build_root = tmp_path / "root"
    (build_root / "apps" / "web" / "src").mkdir(parents=True)
    (build_root / "apps" / "web" / "Dockerfile").write_text("FROM scratch\n")
    (build_root / "notes.txt").write_text("not a context\n")
    (tmp_path / "outside" / "app").mkdir(parents=True)
    return build_root


def _problem(build_root: Path, context: str) -> dict[str, str]:
    with pytest.raises(RequestRejected) as caught:
        resolve_build_context(build_root, context)
    assert caught.value.errors, "a rejection names the field"
    assert all(e["field"] == "build.context" for e in caught.value.errors)
    return caught.value.errors[0]


class TestRefused:
    @pytest.mark.parametrize(
        "context",
        ["..", "../outside", "apps/../../outside/app", "apps/web/../../../outside", "./../root/../outside"],
    )
    def test_dot_dot_escape_is_refused(self, root: Path, context: str) -> None:
        """A context that climbs out of the build root with ``..`` is rejected as outside the root."""
        assert "under the worker's build root" in _problem(root, context)["problem"]

    @pytest.mark.parametrize("context", ["/", "/etc", "/tmp", "//etc"])
    def test_absolute_path_is_refused(self, root: Path, context: str) -> None:
        """An absolute context is rejected even when it exists."""
        assert "relative" in _problem(root, context)["problem"]

    def test_absolute_path_into_the_root_is_refused(self, root: Path) -> None:
        """Even an absolute path that names a directory inside the root is rejected: contexts are relative."""
        assert "relative" in _problem(root, str(root / "apps" / "web"))["problem"]

    def test_symlink_pointing_outside_is_refused(self, root: Path, tmp_path: Path) -> None:
        """A symlink inside the root whose target lies outside it is rejected (the link is followed)."""
        (root / "escape").symlink_to(tmp_path / "outside" / "app", target_is_directory=True)
        assert (root / "escape").is_dir()
        assert "under the worker's build root" in _problem(root, "escape")["problem"]

    def test_path_through_an_escaping_symlink_is_refused(self, root: Path, tmp_path: Path) -> None:
        """A context that passes through an escaping symlink mid-path is rejected too."""
        (root / "apps" / "up").symlink_to(tmp_path, target_is_directory=True)
        assert "under the worker's build root" in _problem(root, "apps/up/outside/app")["problem"]

    def test_file_is_refused(self, root: Path) -> None:
        """A context naming a file, not a directory, is rejected."""
        assert "not a directory" in _problem(root, "notes.txt")["problem"]
        assert "not a directory" in _problem(root, "apps/web/Dockerfile")["problem"]

    def test_missing_directory_is_refused(self, root: Path) -> None:
        """A context that does not exist is rejected as not a directory."""
        assert "not a directory" in _problem(root, "apps/nope")["problem"]


class TestUnresolvablePaths:
    """Contexts the operating system cannot name or resolve must be rejected like any other bad context.

    Each once raised straight out of ``resolve_build_context`` (and so out of the entry task), giving
    the publisher a Celery FAILURE instead of a ``rejected`` DeploymentResult.
    """

    def test_nul_byte_is_rejected(self, root: Path) -> None:
        """A context with a NUL byte is rejected (build.context), not raised as ValueError."""
        _problem(root, "apps/web\x00")

    @pytest.mark.parametrize("context", ["a" * 300, "x/" * 2100], ids=["long component", "long path"])
    def test_overlong_path_is_rejected(self, root: Path, context: str) -> None:
        """A context longer than the OS allows (NAME_MAX or PATH_MAX) is rejected, not raised as OSError."""
        _problem(root, context)

    def test_lone_surrogate_is_rejected(self, root: Path) -> None:
        """A context holding a lone surrogate (valid in JSON text) is rejected, not raised."""
        _problem(root, "apps/\ud800")

    def test_symlink_loop_is_rejected(self, root: Path) -> None:
        """A symlink loop inside the root is rejected (build.context), not raised as RuntimeError."""
        (root / "loop").symlink_to(root / "loop")
        _problem(root, "loop")


class TestAccepted:
    def test_nested_directory_is_accepted(self, root: Path) -> None:
        """A nested directory under the root is returned, resolved."""
        assert resolve_build_context(root, "apps/web") == (root / "apps" / "web").resolve()
        assert resolve_build_context(root, "apps/web/src") == (root / "apps" / "web" / "src").resolve()

    def test_dot_dot_that_stays_inside_is_accepted(self, root: Path) -> None:
        """``..`` that never leaves the root is fine: the resolved path is what counts."""
        assert resolve_build_context(root, "apps/web/src/../..") == (root / "apps").resolve()

    def test_root_itself_is_accepted(self, root: Path) -> None:
        """``.`` names the build root itself, which is allowed."""
        assert resolve_build_context(root, ".") == root.resolve()

    def test_symlink_staying_inside_is_accepted(self, root: Path) -> None:
        """A symlink inside the root pointing to a directory inside the root is followed and accepted."""
        (root / "current").symlink_to(root / "apps" / "web", target_is_directory=True)
        (root / "relative").symlink_to(Path("apps") / "web" / "src", target_is_directory=True)
        assert resolve_build_context(root, "current") == (root / "apps" / "web").resolve()
        assert resolve_build_context(root, "relative") == (root / "apps" / "web" / "src").resolve()

    def test_build_root_given_through_a_symlink_is_accepted(self, root: Path, tmp_path: Path) -> None:
        """A build root that is itself a symlink still accepts its own subdirectories."""
        (tmp_path / "root-link").symlink_to(root, target_is_directory=True)
        got = resolve_build_context(tmp_path / "root-link", "apps/web")
        assert got == (root / "apps" / "web").resolve()
