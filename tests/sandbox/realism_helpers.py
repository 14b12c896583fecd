"""Play one realism profile on the session's sandbox for the length of a test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from deploy_agent.sandbox import Sandbox
from deploy_agent.sandbox.realism import Realism


@contextmanager
def playing(sandbox: Sandbox, profile: Realism) -> Iterator[Realism]:
    """Run the ECS timeline of ``profile`` until the block ends, then the session's profile again."""
    saved = sandbox.scheduler.realism
    sandbox.scheduler.use_profile(profile)
    try:
        yield profile
    finally:
        sandbox.scheduler.use_profile(saved)
