"""Good releases: which one a manual rollback goes back to, and which old revisions may go."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_REVISION = re.compile(r"^\d{1,9}$")


class NoRollbackTarget(ValueError):
    """There is no release to go back to (with a reason an operator can act on)."""


def choose_rollback_target(
    releases: Sequence[Mapping[str, Any]], current_task_definition: str, to: str | None
) -> str:
    """Return the task definition (ARN, or ``family:revision``) a manual rollback should deploy.

    ``to`` may be a deployment id from the ledger, a revision number of the current family, a
    ``family:revision`` or a task-definition ARN; without it, the newest good release that is not
    what the service runs now.
    """
    if to is None:
        for release in releases:
            if release["task_definition_arn"] != current_task_definition:
                return str(release["task_definition_arn"])
        raise NoRollbackTarget("no earlier good release of this service is recorded")
    for release in releases:
        if release.get("deployment_id") == to:
            return str(release["task_definition_arn"])
    if _REVISION.match(to):
        return f"{family_of(current_task_definition)}:{to}"
    if to.startswith("arn:") or ":" in to:
        return to
    raise NoRollbackTarget(f"{to!r} is neither a recorded deployment id, a revision nor a task definition")


def family_of(task_definition: str) -> str:
    """Return the family of an ARN or ``family:revision``."""
    name = task_definition.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0]


def plan_revision_cleanup(registered: Sequence[str], needed: Iterable[str], keep: int) -> list[str]:
    """Return the revisions to deregister: ours (``registered``, oldest first), beyond the newest
    ``keep``, that nothing still needs (the ledger's releases, the service's current revision)."""
    protected = set(needed)
    newest = set(registered[-keep:]) if keep > 0 else set()
    return [arn for arn in registered if arn not in protected and arn not in newest]
