"""What the state Redis may keep of a message: environment and build-arg values only while needed.

A deployment's stored state carries the message (``PipelineState.request``) for the result TTL.
Build args are needed until the image is built, container environment values until the task
definition is registered; after that their values are dropped (names kept) from every save, and
never kept in the release ledger. ``DROPPED`` takes the place of each value.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

#: what a dropped value reads as (still a valid value, so the stored request still validates)
DROPPED = ""

_PAST_BUILD = frozenset({"built", "pushed", "registered", "updating", "verifying", "rolling_back", "done"})
_PAST_REGISTER = frozenset({"registered", "updating", "verifying", "rolling_back", "done"})


def scrub_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a ``PipelineState`` dump without the values no later stage needs."""
    scrubbed = copy.deepcopy(dict(state))
    request = scrubbed.get("request")
    if not isinstance(request, dict):
        return scrubbed
    phase = str(scrubbed.get("phase") or "")
    finished = scrubbed.get("outcome") is not None or phase == "done"
    registered = finished or scrubbed.get("task_definition_arn") is not None or phase in _PAST_REGISTER
    built = (
        registered or bool(scrubbed.get("local_image") or scrubbed.get("image_uri")) or phase in _PAST_BUILD
    )
    if built:
        build = request.get("build")
        if isinstance(build, dict) and isinstance(build.get("build_args"), dict):
            build["build_args"] = {name: DROPPED for name in build["build_args"]}
    if registered:
        task_definition = request.get("task_definition")
        if isinstance(task_definition, dict):
            for key in ("container_definitions", "containerDefinitions"):
                _drop_environment(task_definition.get(key))
    return scrubbed


def scrub_release(release: Mapping[str, Any]) -> dict[str, Any]:
    """Return a release ledger entry whose stored definition holds no environment values.

    ``environment_values_dropped`` says values were dropped: such a definition is never registered
    again (its containers would start without their environment).
    """
    scrubbed = copy.deepcopy(dict(release))
    kwargs = scrubbed.get("register_kwargs")
    if isinstance(kwargs, dict) and _drop_environment(kwargs.get("containerDefinitions")):
        scrubbed["environment_values_dropped"] = True
    return scrubbed


def has_environment_values(kwargs: Mapping[str, Any]) -> bool:
    """Return whether RegisterTaskDefinition ``kwargs`` give any container an environment value."""
    return _drop_environment(copy.deepcopy(kwargs.get("containerDefinitions")))


def _drop_environment(containers: Any) -> bool:
    """Drop the environment values of each container, in place; return whether any value was dropped."""
    dropped = False
    if not isinstance(containers, list):
        return dropped
    for container in containers:
        if not isinstance(container, dict):
            continue
        environment = container.get("environment")
        if isinstance(environment, dict):
            dropped |= any(value != DROPPED for value in environment.values())
            container["environment"] = {name: DROPPED for name in environment}
        elif isinstance(environment, list):
            for entry in environment:
                if isinstance(entry, dict) and "value" in entry:
                    dropped |= entry["value"] != DROPPED
                    entry["value"] = DROPPED
    return dropped
