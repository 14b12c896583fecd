"""A streaming HTTP proxy in front of the sandbox's registry that plays ECR's push rules.

Everything (HEAD/GET/PUT/PATCH/POST/DELETE, chunked or sized bodies of any length) is passed through
as it comes; the ``Host`` header is kept, so the registry's absolute ``Location`` headers point back at
the proxy. Two things differ from a plain registry, as ECR does them:

- ``PUT /v2/<repo>/manifests/<tag>`` of a tag that already exists in a repository whose tags are
  immutable (moto's ECR ``imageTagMutability``, exclusion filters included) is refused with 400 and
  an OCI distribution error ``TAG_INVALID``; docker prints "tag invalid: The image tag '<tag>' already
  exists in the '<repo>' repository and cannot be overwritten because the repository is immutable."
  (moby/buildkit#3776). ECR refuses even the same image again.
- after a manifest PUT succeeds, the image is recorded in moto's ECR backend (manifest, tag and the
  registry's real ``Docker-Content-Digest``), so DescribeImages/BatchGetImage show pushed images.

A repository moto does not know is passed through unrecorded (the sandbox's tests push without one).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.backends import get_backend

_MANIFEST_PUT = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/?]+)$")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_ACCEPT_MANIFESTS = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_PIECE = 1 << 16


def _wildcard(pattern: str) -> re.Pattern[str]:
    # ECR's exclusion filters are WILDCARD filters: '*' is the only special character.
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def tag_is_immutable(mutability: str, exclusion_filters: list[dict[str, str]] | None, tag: str) -> bool:
    """Return whether ECR refuses to overwrite ``tag`` under this repository setting.

    IMMUTABLE / MUTABLE as named; the ``*_WITH_EXCLUSION`` settings flip for tags an exclusion
    filter matches (ECR API reference, ImageTagMutabilityExclusionFilter).
    """
    excluded = any(_wildcard(f.get("filter", "")).match(tag) for f in exclusion_filters or [])
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        return not excluded
    if mutability == "MUTABLE_WITH_EXCLUSION":
        return excluded
    return mutability == "IMMUTABLE"


def tag_invalid_body(tag: str, repository: str) -> bytes:
    """Return ECR's OCI distribution error body for an overwrite of an immutable tag."""
    message = (
        f"The image tag '{tag}' already exists in the '{repository}' repository "
        "and cannot be overwritten because the repository is immutable."
    )
    return json.dumps({"errors": [{"code": "TAG_INVALID", "message": message}]}).encode()


class RegistryProxy:
    """The proxy on 127.0.0.1:``port`` (0: a free one) in front of the registry on ``upstream_port``."""

    def __init__(self, upstream_port: int, account: str, region: str, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.account = account
        self.region = region
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Return the port the proxy listens on."""
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """Return ``127.0.0.1:PORT``, as used in image references."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> RegistryProxy:
        """Serve on a daemon thread and return self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="registry-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def repository(self, name: str) -> Any | None:
        """Return moto's ECR repository ``name`` in the proxy's account and Region, or None."""
        return get_backend("ecr")[self.account][self.region].repositories.get(name)

    def tag_exists(self, name: str, tag: str, repository: Any) -> bool:
        """Return whether ``tag`` is in moto's repository or answers in the registry."""
        if any(tag in image.image_tags for image in repository.images):
            return True
        connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            connection.request("HEAD", f"/v2/{name}/manifests/{tag}", headers={"Accept": _ACCEPT_MANIFESTS})
            return connection.getresponse().status == 200
        finally:
            connection.close()

    def record(self, name: str, ref: str, manifest: bytes, media_type: str, digest: str) -> None:
        """Put the pushed image into moto's ECR (tagged by ``ref`` unless it is a digest)."""
        backend = get_backend("ecr")[self.account][self.region]
        tag = None if ref.startswith("sha256:") else ref
        text = manifest.decode()
        repository = backend.repositories[name]
        for image in repository.images:
            if image.get_image_digest() == digest:
                if tag and tag not in image.image_tags:
                    _untag(repository, tag)
                    image.update_tag(tag)
                return
        if tag:
            _untag(repository, tag)
        backend.put_image(name, text, tag, media_type or None, digest)  # type: ignore[arg-type]


def _untag(repository: Any, tag: str) -> None:
    """Move ``tag`` off whatever image has it (a mutable overwrite), as ECR does."""
    for image in repository.images:
        if tag in image.image_tags:
            image.image_tags.remove(tag)
            if image.image_tag == tag:
                image.image_tag = image.image_tags[0] if image.image_tags else None


class _Handler(BaseHTTPRequestHandler):
    owner: RegistryProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._forward()

    do_HEAD = do_PUT = do_PATCH = do_POST = do_DELETE = do_GET

    def _forward(self) -> None:
        manifest = _MANIFEST_PUT.match(self.path.split("?", 1)[0]) if self.command == "PUT" else None
        if manifest is None:
            self._pass(self._body())
            return
        body = b"".join(self._body())  # a manifest is small (ECR caps it at 4 MiB)
        name, ref = manifest["name"], manifest["ref"]
        repository = self.owner.repository(name)
        if (
            repository is not None
            and not ref.startswith("sha256:")
            and tag_is_immutable(
                repository.image_tag_mutability, repository.image_tag_mutability_exclusion_filters, ref
            )
            and self.owner.tag_exists(name, ref, repository)
        ):
            error = tag_invalid_body(ref, name)
            self.send_response(400)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)
            return
        status, digest = self._pass(iter([body]), len(body))
        if repository is not None and status == 201 and digest:
            self.owner.record(name, ref, body, self.headers.get("Content-Type", ""), digest)

    def _body(self) -> Iterator[bytes]:
        """Yield the request body as it arrives (sized or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            piece = self.rfile.read(min(_PIECE, remaining))
            if not piece:
                return
            remaining -= len(piece)
            yield piece

    def _pass(self, body: Iterator[bytes], length: int | None = None) -> tuple[int, str]:
        """Send the request upstream, stream the answer back; return (status, Docker-Content-Digest)."""
        upstream = http.client.HTTPConnection("127.0.0.1", self.owner.upstream_port, timeout=300)
        try:
            sized = length is not None or "Content-Length" in self.headers
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for key, value in self.headers.items():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    upstream.putheader(key, value)
            if sized:
                upstream.putheader(
                    "Content-Length", str(length if length is not None else self.headers["Content-Length"])
                )
            elif (
                self.command in ("PUT", "PATCH", "POST")
                and "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            ):
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.endheaders()
            chunked = (
                not sized
                and self.command in ("PUT", "PATCH", "POST")
                and "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            )
            for piece in body:
                upstream.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                upstream.send(b"0\r\n\r\n")
            response = upstream.getresponse()
            self._answer(response)
            return response.status, response.getheader("Docker-Content-Digest", "") or ""
        finally:
            upstream.close()

    def _answer(self, response: http.client.HTTPResponse) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        if length is None and not no_body:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if no_body:
            return
        while piece := response.read(_PIECE):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if length is None else piece)
        if length is None:
            self.wfile.write(b"0\r\n\r\n")
