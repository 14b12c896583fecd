"""Where a build may read from: the build context under the worker's build root, the Dockerfile
inside the context. Both are resolved on the filesystem (symlinks followed), so a path that only
looks inside but leads out is refused.

A message's context is refused (``RequestRejected``) unless it is a directory under the build root;
its Dockerfile unless it names a file inside that context (``DockerfileOutsideContext``).
"""

from __future__ import annotations

import re
from pathlib import Path

from deploy_agent.core.errors import RequestRejected


def resolve_build_context(build_root: Path, context: str, dockerfile: str | None = None) -> Path:
    """Return the build context as a directory under ``build_root``, or reject the message; with
    ``dockerfile``, reject it too unless it names a file inside that context (no symlink out)."""
    try:
        resolved = _resolve_build_context(build_root, context)
    except (ValueError, OSError, RuntimeError) as exc:  # NUL bytes, names too long, symlink loops
        if isinstance(exc, RequestRejected):
            raise
        raise _context_rejected(f"is not a usable path ({type(exc).__name__})") from None
    if dockerfile is not None:
        try:
            confine_dockerfile(resolved, dockerfile)
        except DockerfileOutsideContext as exc:
            raise RequestRejected(
                f"invalid DeployToECSTask: {exc}", [{"field": "build.dockerfile", "problem": exc.problem}]
            ) from None
    return resolved


def _resolve_build_context(build_root: Path, context: str) -> Path:
    root = build_root.resolve()
    if Path(context).is_absolute():
        raise _context_rejected("must be a path relative to the worker's build root")
    candidate = (root / context).resolve()  # resolves symlinks: one pointing outside is refused
    if candidate != root and root not in candidate.parents:
        raise _context_rejected("must be a directory under the worker's build root")
    if not candidate.is_dir():
        raise _context_rejected("is not a directory under the worker's build root")
    return candidate


def _context_rejected(problem: str) -> RequestRejected:
    return RequestRejected(
        f"invalid DeployToECSTask: build.context: {problem}", [{"field": "build.context", "problem": problem}]
    )


class DockerfileOutsideContext(ValueError):
    """``build.dockerfile`` does not name a file inside the build context; ``problem`` says why."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"build.dockerfile: {problem}")
        self.problem = problem


def confine_dockerfile(context_dir: Path, dockerfile: str) -> str:
    """Return ``dockerfile`` as a path relative to the (resolved) context, after checking that it
    names a file inside it: no absolute path, no ``..``, no NUL byte, no symlink that leads out.

    Raises :class:`DockerfileOutsideContext`.
    """
    if not dockerfile:
        raise DockerfileOutsideContext("must not be empty")
    if "\x00" in dockerfile:
        raise DockerfileOutsideContext("must not contain NUL bytes")
    relative = Path(dockerfile)
    if relative.is_absolute() or dockerfile.startswith("\\"):
        raise DockerfileOutsideContext("must be a path relative to the build context")
    if ".." in re.split(r"[/\\]", dockerfile):
        raise DockerfileOutsideContext("must not contain '..' (it must name a file inside the build context)")
    try:
        context = Path(context_dir).resolve()
        resolved = (context / relative).resolve()  # follows symlinks: one leading out is refused
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, names too long
        raise DockerfileOutsideContext(f"is not a usable path ({type(exc).__name__})") from None
    if context not in resolved.parents:
        raise DockerfileOutsideContext(
            "must name a file inside the build context (a symlink may not lead out)"
        )
    try:
        is_file = resolved.is_file()
    except OSError as exc:
        raise DockerfileOutsideContext(f"is not a usable path ({type(exc).__name__})") from None
    if not is_file:
        raise DockerfileOutsideContext("is not a file in the build context")
    return resolved.relative_to(context).as_posix()
