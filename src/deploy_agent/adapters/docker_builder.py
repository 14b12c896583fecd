"""Docker: build, tag, inspect, push and prune images through the Engine API (docker-py ``APIClient``).

The engine reports build and push failures inside an HTTP 200 stream, so every chunk is checked
for ``error``/``errorDetail``; a push that ends without an ``aux.Digest`` is a failure too.
Errors become ``BuildFailed`` (build, tag, inspect, prune) or ``PushFailed`` (push).

Builds use the classic builder (docker-py cannot drive BuildKit). ``RUN`` steps get the engine's
default network unless the builder is told ``"none"`` or ``"host"`` (settings ``build_network``):
host networking would let a build reach everything the worker's host reaches (the instance
metadata service, a Redis on 127.0.0.1), so it is for local use only.

The Dockerfile is confined to the build context like the context is to the build root: an absolute
path, ``..``, a NUL byte or a symlink that resolves outside the context is refused
(``adapters.build_context.confine_dockerfile``), and docker-py gets the path relative to the context.

Timeouts: docker-py builds with no read timeout, but every other call uses the client's timeout
(60 s by default), and the engine cancels a push when the connection closes. Give the push an
``APIClient`` created with a generous timeout: ``DockerBuilder.connect`` does.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors
import requests

from deploy_agent.adapters.build_context import DockerfileOutsideContext, confine_dockerfile
from deploy_agent.adapters.build_log import LineSplitter
from deploy_agent.adapters.ecr import RegistryAuth
from deploy_agent.core.errors import BuildFailed, DeployError, PushFailed

_SUCCESSFULLY_BUILT = re.compile(r"Successfully built ([0-9a-f]{12,64})")
#: Connection-level failures docker-py lets through from requests/urllib3.
_TRANSPORT_ERRORS = (requests.exceptions.RequestException, OSError)

LogCallback = Callable[[str], None]
BuildNetwork = Literal["default", "none", "host"]
#: a push may take minutes on a slow link; docker-py's default of 60 s is the source of many
#: "Read timed out" reports
DOCKER_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class BuiltImage:
    """The result of a build: the engine's image id (``sha256:...``) and the tag it was given."""

    image_id: str
    tag: str
    duration_seconds: float


def _chunk_error(chunk: dict[str, Any]) -> str | None:
    if "error" not in chunk and "errorDetail" not in chunk:
        return None
    detail = chunk.get("errorDetail") or {}
    message = chunk.get("error") or (detail.get("message") if isinstance(detail, dict) else None)
    return str(message or "unknown error").strip()


def _api_error_text(exc: docker.errors.DockerException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


@contextmanager
def _translated(error: type[DeployError], action: str) -> Iterator[None]:
    try:
        yield
    except DeployError:
        raise
    except docker.errors.DockerException as exc:
        raise error(f"{action}: {_api_error_text(exc)}") from exc
    except _TRANSPORT_ERRORS as exc:
        raise error(f"{action}: cannot reach the Docker engine: {type(exc).__name__}: {exc}") from exc


class DockerBuilder:
    """Builds and pushes images through one docker-py ``APIClient`` (see the module note on timeouts)."""

    def __init__(
        self,
        api: docker.APIClient,
        clock: Callable[[], float] = time.monotonic,
        *,
        network: BuildNetwork = "default",
    ) -> None:
        self._api = api
        self._clock = clock
        #: the network of RUN steps: the engine's default, "none" or "host"
        self.network: BuildNetwork = network

    @classmethod
    def connect(
        cls,
        base_url: str | None = None,
        timeout: int = DOCKER_TIMEOUT_SECONDS,
        *,
        network: BuildNetwork = "default",
    ) -> DockerBuilder:
        """Return a builder on the engine at ``base_url`` (default: ``DOCKER_HOST``, else the local
        socket); asks the engine its API version, so this is the call that first reaches Docker."""
        url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        return cls(docker.APIClient(base_url=url, timeout=timeout, version="auto"), network=network)

    def build(
        self,
        context_dir: Path,
        dockerfile: str = "Dockerfile",
        tag: str = "",
        build_args: dict[str, str] | None = None,
        target: str | None = None,
        cache_from: list[str] | None = None,
        labels: dict[str, str] | None = None,
        platform: str | None = None,
        on_log: LogCallback | None = None,
    ) -> BuiltImage:
        """Return the built image; each build output line goes to ``on_log`` as it arrives.

        Raises ``BuildFailed`` whose message is the builder's own error line, or names the
        Dockerfile problem (:func:`confine_dockerfile`) before anything reaches the engine.
        """
        context = Path(context_dir)
        if not context.is_dir():
            raise BuildFailed(f"build context {context} is not a directory")
        try:
            relative_dockerfile = confine_dockerfile(context, dockerfile)
        except DockerfileOutsideContext as exc:
            raise BuildFailed(str(exc)) from None
        context = context.resolve()
        started = self._clock()
        lines = LineSplitter(on_log)
        image_id: str | None = None
        with _translated(BuildFailed, f"docker build of {tag or context}"):
            stream = self._api.build(
                path=str(context),
                dockerfile=relative_dockerfile,
                tag=tag or None,
                buildargs=build_args or None,
                target=target,
                cache_from=cache_from or None,
                labels=labels or None,
                platform=platform,
                decode=True,
                rm=True,
                forcerm=True,
                network_mode=None if self.network == "default" else self.network,
            )
            try:
                for chunk in stream:
                    message = _chunk_error(chunk)
                    if message is not None:
                        lines.flush()
                        raise BuildFailed(message)
                    text = chunk.get("stream")
                    if isinstance(text, str):
                        lines.feed(text)
                        found = _SUCCESSFULLY_BUILT.search(text)
                        if found and image_id is None:
                            image_id = found.group(1)
                    aux = chunk.get("aux")
                    if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                        image_id = aux["ID"]
            finally:
                _close(stream)
            lines.flush()
            if image_id is None:
                raise BuildFailed(f"docker build of {tag or context} ended without an image id")
            if not image_id.startswith("sha256:"):
                image_id = str(self._inspect_image(image_id)["Id"])
        return BuiltImage(image_id=image_id, tag=tag, duration_seconds=self._clock() - started)

    def tag(self, image_id: str, repository: str, tag: str) -> str:
        """Return ``repository:tag`` after pointing it at the image."""
        with _translated(BuildFailed, f"docker tag {image_id} {repository}:{tag}"):
            if not self._api.tag(image_id, repository, tag, force=True):
                raise BuildFailed(f"docker tag {image_id} {repository}:{tag} was refused by the engine")
        return f"{repository}:{tag}"

    def inspect(self, ref: str) -> dict[str, Any]:
        """Return the engine's description of a local image (id, tag or digest reference)."""
        with _translated(BuildFailed, f"docker inspect {ref}"):
            return self._inspect_image(ref)

    def remove_old_images(self, repository: str, keep: int, protect: Iterable[str] = ()) -> list[str]:
        """Return the ids of local images of ``repository`` removed beyond the newest ``keep``.

        Only this repository's tags are removed (an image also tagged elsewhere stays under that
        name). Images named in ``protect`` (by id, ``repo:tag`` or digest) are never removed, and
        images the engine refuses to remove (in use by a container) are skipped.
        """
        protected = set(protect)
        with _translated(BuildFailed, f"docker images {repository}"):
            images = list(self._api.images(name=repository))
        images.sort(key=lambda image: int(image.get("Created") or 0), reverse=True)
        removed: list[str] = []
        for image in images[max(keep, 0) :]:
            image_id = str(image.get("Id", ""))
            names = {image_id, image_id.removeprefix("sha256:")}
            names.update(image.get("RepoTags") or [])
            names.update(image.get("RepoDigests") or [])
            if names & protected:
                continue
            refs = [t for t in image.get("RepoTags") or [] if t.rsplit(":", 1)[0] == repository] or [image_id]
            if self._remove_refs(refs):
                removed.append(image_id)
        return removed

    def push(
        self,
        repository: str,
        tag: str,
        auth: RegistryAuth | None = None,
        on_progress: LogCallback | None = None,
    ) -> str:
        """Return the registry's digest (``sha256:...``) of ``repository:tag`` after pushing it.

        ``on_progress`` gets one line per layer status change (``"<layer>: Pushed"``); the byte
        progress ticks are left out. Raises ``PushFailed`` on any in-stream error and when the
        engine reports no digest.
        """
        ref = f"{repository}:{tag}"
        digest: str | None = None
        with _translated(PushFailed, f"docker push {ref}"):
            stream = self._api.push(
                repository,
                tag=tag,
                stream=True,
                decode=True,
                auth_config=auth.as_docker_auth() if auth is not None else None,
            )
            try:
                for chunk in stream:
                    message = _chunk_error(chunk)
                    if message is not None:
                        raise PushFailed(f"docker push {ref}: {message}")
                    aux = chunk.get("aux")
                    if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
                        digest = aux["Digest"]
                    status = chunk.get("status")
                    if on_progress is not None and isinstance(status, str) and status != "Pushing":
                        layer = chunk.get("id")
                        on_progress(f"{layer}: {status}" if layer else status)
            finally:
                _close(stream)
        if not digest or not digest.startswith("sha256:"):
            raise PushFailed(f"docker push {ref} finished without reporting a digest")
        return digest

    def _inspect_image(self, ref: str) -> dict[str, Any]:
        return dict(self._api.inspect_image(ref))  # type: ignore[no-untyped-call]  # untyped in types-docker

    def _remove_refs(self, refs: list[str]) -> bool:
        for ref in refs:
            try:
                self._api.remove_image(ref)
            except docker.errors.APIError as exc:
                # 409: used by a container; 404: someone removed it first. Neither is ours to fix.
                if exc.status_code in (404, 409):
                    return False
                raise BuildFailed(f"docker rmi {ref}: {_api_error_text(exc)}") from exc
            except _TRANSPORT_ERRORS as exc:
                raise BuildFailed(f"docker rmi {ref}: cannot reach the Docker engine: {exc}") from exc
        return True


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()
