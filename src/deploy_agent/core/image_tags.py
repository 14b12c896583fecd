"""May this build be pushed under its tag, or is the tag taken? Pure.

An ECR repository with IMMUTABLE tags refuses a second push of an existing tag, even of the very
same image ("The image tag '...' already exists in the '...' repository and cannot be overwritten
because the repository is immutable", ECR's ImageTagAlreadyExistsException; moby/buildkit#3776).
A redelivered push stage, or a release that names a fixed tag, meets exactly that. So before
pushing, the shell looks the tag up (BatchGetImage) and asks :func:`decide_tag_push`:

* the tag is free, or may be overwritten: ``push``;
* the tag holds the image we built: ``reuse`` it (nothing is pushed; the task definition names the
  digest ECR already has);
* the tag holds another image: ``conflict``, the deployment fails at the push stage, before
  anything on ECS is touched.

"The image we built" is decided without pushing: a registry manifest (Docker schema 2 or OCI)
names its image configuration by digest, and the local engine's image id *is* that digest (the
sha256 of the configuration, which lists every layer's diff id). Equal config digests are the same
image. An image the engine pulled or pushed before also lists ``repo@sha256:...`` in RepoDigests,
which is compared with ECR's manifest digest (this covers manifest lists, whose config sits one
level down).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

TagDecision = Literal["push", "reuse", "conflict"]


@dataclass(frozen=True)
class RemoteImage:
    """What the registry holds under a tag: its manifest digest and image-config digest (if any)."""

    digest: str
    config_digest: str | None = None


def is_tag_immutable(mutability: str, exclusion_filters: Sequence[str], tag: str) -> bool:
    """Return True when ECR refuses to overwrite ``tag`` in a repository with these settings.

    ``IMMUTABLE_WITH_EXCLUSION`` leaves tags that match a filter mutable; ``MUTABLE_WITH_EXCLUSION``
    makes exactly the matching tags immutable. Filters are ECR wildcards (``*`` for any run of
    characters; ECR allows no other special character).
    """
    matches = any(fnmatchcase(tag, pattern) for pattern in exclusion_filters)
    if mutability == "IMMUTABLE":
        return True
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        return not matches
    if mutability == "MUTABLE_WITH_EXCLUSION":
        return matches
    return False


def manifest_config_digest(manifest_text: str) -> str | None:
    """Return the ``config.digest`` of a single-image manifest, or None (a list/index, or not JSON)."""
    try:
        manifest = json.loads(manifest_text)
    except ValueError:
        return None
    config = manifest.get("config") if isinstance(manifest, dict) else None
    digest = config.get("digest") if isinstance(config, dict) else None
    return digest if isinstance(digest, str) else None


def decide_tag_push(
    remote: RemoteImage | None,
    immutable: bool,
    local_image_id: str,
    local_repo_digests: Sequence[str] = (),
) -> TagDecision:
    """Return whether to push the local image under its tag, reuse what the tag holds, or refuse.

    ``remote`` is what the tag holds now (None: the tag is free). ``local_repo_digests`` are the
    engine's ``RepoDigests`` of the local image (``repo@sha256:...``).
    """
    if remote is None or not immutable:
        return "push"
    if remote.config_digest is not None and remote.config_digest == local_image_id:
        return "reuse"
    if any(ref.rpartition("@")[2] == remote.digest for ref in local_repo_digests):
        return "reuse"
    return "conflict"
