"""Play one realism profile on the session's sandbox for the length of a test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ecs_sandbox import Sandbox
from ecs_sandbox.realism import Realism


@contextmanager
def playing(sandbox: Sandbox, profile: Realism) -> Iterator[Realism]:
    """Play ``profile`` in every part of the sandbox until the block ends, then the session's again."""
    saved = sandbox.scheduler.realism
    sandbox.use_profile(profile)
    try:
        yield profile
    finally:
        sandbox.use_profile(saved)
