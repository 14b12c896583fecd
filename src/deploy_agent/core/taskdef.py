"""Task definition plans: the next revision's ``register_task_definition`` arguments, and its diff. Pure.

A plan starts either from the service's current definition (``plan_task_definition``) or from a
full definition given in the message (``plan_from_spec``). Only the target container's image
changes; every other container keeps its own image (sidecars), and secrets stay ARNs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from deploy_agent.core.errors import RequestRejected

#: The fields ``RegisterTaskDefinition`` accepts. Everything else ``DescribeTaskDefinition`` returns
#: (taskDefinitionArn, revision, status, requiresAttributes, compatibilities, registeredAt/By,
#: deregisteredAt, deleteRequestedAt, ...) is output only and must not be sent back.
REGISTER_FIELDS = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "tags",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
    "trustedExecutionConfiguration",
)


def _containers(td: dict[str, Any]) -> list[dict[str, Any]]:
    containers = td.get("containerDefinitions")
    if not isinstance(containers, list) or not containers:
        raise RequestRejected(
            "the task definition has no containerDefinitions",
            [
                {
                    "field": "task_definition.containerDefinitions",
                    "problem": "at least one container is required",
                }
            ],
        )
    return containers


def _target_container(td: dict[str, Any], container_name: str | None) -> dict[str, Any]:
    containers = _containers(td)
    if container_name is None:
        # ECS treats a container without "essential" as essential
        for container in containers:
            if container.get("essential", True):
                return container
        raise RequestRejected(
            "the task definition has no essential container; name one in container_name",
            [{"field": "container_name", "problem": "no essential container to default to"}],
        )
    for container in containers:
        if container.get("name") == container_name:
            return container
    known = ", ".join(str(c.get("name")) for c in containers)
    raise RequestRejected(
        f"container {container_name} is not in the task definition (containers: {known})",
        [{"field": "container_name", "problem": f"unknown container {container_name}; known: {known}"}],
    )


def image_of(td: dict[str, Any], container_name: str | None = None) -> str:
    """Return the image of ``container_name`` (default: the first essential container)."""
    return str(_target_container(td, container_name).get("image", ""))


def plan_task_definition(
    current: dict[str, Any],
    image: str,
    container_name: str | None = None,
    tags: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Return ``register_task_definition`` kwargs: ``current`` with only the target image replaced.

    ``current`` is what ``EcsApi.describe_task_definition`` returns (the ``taskDefinition``, with
    its ``tags`` added); ``tags``, when given, replace the ones in ``current``. Empty values
    (``None``, ``[]`` tags) are left out.
    """
    kwargs = {key: copy.deepcopy(value) for key, value in current.items() if key in REGISTER_FIELDS}
    if tags is not None:
        kwargs["tags"] = copy.deepcopy(tags)
    kwargs = {
        key: value for key, value in kwargs.items() if value is not None and not (key == "tags" and not value)
    }
    _target_container(kwargs, container_name)["image"] = image
    return kwargs


def plan_from_spec(
    register_kwargs: dict[str, Any], image: str, container_name: str | None = None
) -> dict[str, Any]:
    """Return ``register_task_definition`` kwargs for a full definition given in the message.

    The target container gets ``image``; an unknown ``container_name`` is ``RequestRejected``.
    """
    kwargs = copy.deepcopy(register_kwargs)
    unknown = sorted(key for key in kwargs if key not in REGISTER_FIELDS)
    if unknown:
        raise RequestRejected(
            f"task_definition has fields RegisterTaskDefinition does not accept: {', '.join(unknown)}",
            [
                {"field": f"task_definition.{key}", "problem": "not accepted by RegisterTaskDefinition"}
                for key in unknown
            ],
        )
    _target_container(kwargs, container_name)["image"] = image
    return kwargs


def default_log_configuration(
    kwargs: dict[str, Any], region: str, log_group_prefix: str = "/ecs/"
) -> dict[str, Any]:
    """Return ``kwargs`` with an awslogs configuration added to each container that has none.

    Logs go to group ``<prefix><family>`` in ``region``, streams prefixed by the container name.
    """
    planned = copy.deepcopy(kwargs)
    family = str(planned.get("family", ""))
    for container in _containers(planned):
        if container.get("logConfiguration"):
            continue
        container["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": f"{log_group_prefix}{family}",
                "awslogs-region": region,
                "awslogs-stream-prefix": str(container.get("name", family)),
            },
        }
    return planned


@dataclass(frozen=True)
class LogGroupPlan:
    """What the register stage does about one awslogs group before registering.

    ``create``: the worker named the group itself (``default_log_configuration``), so it creates it;
    else the user named it, so it must exist already (or the user set ``awslogs-create-group``).
    ``in_use``: the revision the service runs writes to it, so ECS found it when those tasks
    started: neither created nor checked (one Logs call less per deployment of a service whose logging
    did not change).
    """

    group: str
    region: str
    create: bool
    in_use: bool = False


def plan_log_groups(
    user_kwargs: dict[str, Any],
    planned_kwargs: dict[str, Any],
    region: str,
    running: dict[str, Any] | None = None,
) -> list[LogGroupPlan]:
    """Return, per awslogs group of the planned revision, whether to create it or check it exists.

    ``user_kwargs`` is the revision before ``default_log_configuration``, ``planned_kwargs`` after;
    ``running`` the revision the service runs now (its groups are ``in_use``), when known.
    Why the worker creates only the groups it named, and does not set ``awslogs-create-group``:
    that option makes the *task execution role* create the group, and that role is the user's,
    often without ``logs:CreateLogGroup``; creating from the worker needs the permission only on the
    worker's own role, and the group exists before any task starts. A group the *user* named is
    theirs (retention, KMS key, tags): the worker does not create it with defaults; when it is
    missing the register stage fails naming it, before anything on ECS changes, instead of a
    rollout whose every task stops with ResourceInitializationError. Groups with
    ``awslogs-create-group`` "true" are left to ECS.
    """
    users = {(g, r) for g, r, _ in _awslogs_groups(user_kwargs, region)}
    in_use = {(g, r) for g, r, _ in _awslogs_groups(running or {}, region)}
    plans: dict[tuple[str, str], LogGroupPlan] = {}
    for group, group_region, create_group in _awslogs_groups(planned_kwargs, region):
        key = (group, group_region)
        if key in in_use:
            plans[key] = LogGroupPlan(group, group_region, create=key not in users, in_use=True)
        elif key in users:
            if not create_group:
                plans.setdefault(key, LogGroupPlan(group, group_region, create=False))
        else:
            plans[key] = LogGroupPlan(group, group_region, create=True)
    return list(plans.values())


def _awslogs_groups(kwargs: dict[str, Any], region: str) -> list[tuple[str, str, bool]]:
    found: list[tuple[str, str, bool]] = []
    for container in kwargs.get("containerDefinitions") or []:
        config = container.get("logConfiguration") or {}
        options = config.get("options") or {}
        if config.get("logDriver") != "awslogs" or not options.get("awslogs-group"):
            continue
        create_group = str(options.get("awslogs-create-group", "")).lower() == "true"
        found.append(
            (str(options["awslogs-group"]), str(options.get("awslogs-region") or region), create_group)
        )
    return found


def _named(items: Any, key: str = "name") -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {str(item.get(key)): item for item in items if isinstance(item, dict)}


def _show(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _diff_field(prefix: str, field: str, old: Any, new: Any) -> list[str]:
    # an absent field and an empty one mean the same to ECS
    if old == new or (old in (None, [], {}) and new in (None, [], {})):
        return []
    if isinstance(old, dict | list) or isinstance(new, dict | list):
        return [f"{prefix}{field} changed"]
    return [f"{prefix}{field}: {_show(old)} -> {_show(new)}"]


def _diff_pairs(prefix: str, what: str, old: Any, new: Any, value_key: str) -> list[str]:
    """Name-keyed lists (environment, secrets): report names only, values may be sensitive."""
    before = {name: item.get(value_key) for name, item in _named(old).items()}
    after = {name: item.get(value_key) for name, item in _named(new).items()}
    changes = [f"{prefix}{what} {name} added" for name in sorted(after.keys() - before.keys())]
    changes += [f"{prefix}{what} {name} removed" for name in sorted(before.keys() - after.keys())]
    changes += [
        f"{prefix}{what} {name} changed"
        for name in sorted(before.keys() & after.keys())
        if before[name] != after[name]
    ]
    return changes


def _diff_container(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    prefix = f"container {name}: "
    changes: list[str] = []
    if old.get("image") != new.get("image"):
        changes.append(f"{prefix}image {_show(old.get('image'))} -> {_show(new.get('image'))}")
    changes += _diff_pairs(prefix, "environment", old.get("environment"), new.get("environment"), "value")
    changes += _diff_pairs(prefix, "secret", old.get("secrets"), new.get("secrets"), "valueFrom")
    for field in sorted((old.keys() | new.keys()) - {"name", "image", "environment", "secrets"}):
        changes += _diff_field(prefix, field, old.get(field), new.get(field))
    return changes


def diff_task_definitions(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Return the human-readable changes from ``old`` to ``new`` (register fields only).

    E.g. ``"container web: image repo:1 -> repo:2"``, ``"container web: environment MODE added"``,
    ``"cpu: 256 -> 512"``. Environment and secret values are never shown, only their names.
    """
    changes: list[str] = []
    for field in REGISTER_FIELDS:
        # tags are metadata of the registration, not of what runs
        if field not in ("containerDefinitions", "tags"):
            changes += _diff_field("", field, old.get(field), new.get(field))
    before, after = _named(old.get("containerDefinitions")), _named(new.get("containerDefinitions"))
    for name in after:
        if name not in before:
            changes.append(f"container {name} added")
        else:
            changes += _diff_container(name, before[name], after[name])
    changes += [f"container {name} removed" for name in before if name not in after]
    return changes
