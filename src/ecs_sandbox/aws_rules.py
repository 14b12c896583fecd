"""The AWS rules moto skips, enforced while switched on (realism profile ``enforce_aws_rules``).

``install(profile)`` switches them on, ``uninstall()`` off. moto reaches them through the methods
``moto_patches`` replaces (its patches 5 to 8: CreateService and UpdateService answers, ``FakeAction``,
the listener/rule writers); while off, those answer as moto does. IMMUTABLE ECR tags are enforced on
the push path by ``registry_proxy``.

Rules, each as AWS documents it:

- CreateService with a ``loadBalancers`` target group that no listener default action or rule
  forwards to fails with InvalidParameterException "The target group with targetGroupArn <arn> does
  not have an associated load balancer." (hashicorp/terraform#32908; CreateService API reference).
- CreateService keeps what moto drops: ``deploymentConfiguration`` (``strategy`` BLUE_GREEN /
  LINEAR / CANARY, ``bakeTimeInMinutes``, ``lifecycleHooks``, linear/canary configuration, alarms),
  ``healthCheckGracePeriodSeconds``, placement, exec and tag options, ``capacityProviderStrategy``
  (which, as in ECS, leaves ``launchType`` unset). DescribeServices echoes what was created.
- UpdateService on a CODE_DEPLOY or EXTERNAL service may change only what botocore's UpdateService
  doc lists for that controller; anything else is an InvalidParameterException.
- authenticate-oidc actions need ``ClientSecret`` when created, and when modified unless
  ``UseExistingClientSecret`` is true (botocore elbv2 ``AuthenticateOidcActionConfig`` doc); Describe*
  never returns the secret and reports the documented defaults (floci-io/floci#3664 on a live account).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from moto.backends import get_backend
from moto.ecs.exceptions import InvalidParameterException
from moto.elbv2.exceptions import ELBClientError
from moto.elbv2.models import ELBv2Backend, FakeAction

from .realism import Realism

# --- pure decisions ---------------------------------------------------------------------------------

#: CreateService members moto's CreateService drops, kept on the service under moto's attribute name.
KEPT_ON_CREATE = {
    "deploymentConfiguration": "deployment_configuration",
    "healthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
    "placementConstraints": "placement_constraints",
    "placementStrategy": "placement_strategy",
    "capacityProviderStrategy": "capacity_provider_strategy",
    "enableExecuteCommand": "enable_execute_command",
    "enableECSManagedTags": "enable_ecs_managed_tags",
    "availabilityZoneRebalancing": "availability_zone_rebalancing",
    "serviceConnectConfiguration": "service_connect_configuration",
}

# botocore UpdateService doc: "For services using the blue/green (CODE_DEPLOY) deployment controller,
# only the desired count, deployment configuration, health check grace period, task placement
# constraints and strategies, enable ECS managed tags option, and propagate tags can be updated";
# "For services using an external deployment controller, you can update only the desired count, task
# placement constraints and strategies, health check grace period, enable ECS managed tags option,
# and propagate tags option". deploymentController itself may be changed (the controller migration).
_ALWAYS = {"cluster", "service", "deploymentController"}
_UPDATABLE = {
    "CODE_DEPLOY": _ALWAYS
    | {
        "desiredCount",
        "deploymentConfiguration",
        "healthCheckGracePeriodSeconds",
        "placementConstraints",
        "placementStrategy",
        "enableECSManagedTags",
        "propagateTags",
    },
    "EXTERNAL": _ALWAYS
    | {
        "desiredCount",
        "healthCheckGracePeriodSeconds",
        "placementConstraints",
        "placementStrategy",
        "enableECSManagedTags",
        "propagateTags",
    },
}
_WORDS = {
    "taskDefinition": "task definition",
    "networkConfiguration": "network parameters",
    "platformVersion": "platform version",
    "loadBalancers": "load balancers",
    "launchType": "launch type",
}


def update_refusal(controller: str, params: dict[str, Any]) -> str | None:
    """Return ECS's refusal of an UpdateService with ``params`` on a ``controller`` service, or None."""
    allowed = _UPDATABLE.get(controller)
    if allowed is None:
        return None
    # forceNewDeployment=false changes nothing; botocore sends what the caller passed.
    changed = [k for k, v in params.items() if k not in allowed and not (k == "forceNewDeployment" and not v)]
    if not changed:
        return None
    first = "taskDefinition" if "taskDefinition" in changed else sorted(changed)[0]
    what = _WORDS.get(first, first)
    if controller == "CODE_DEPLOY":
        # The task-definition wording is ECS's own (botocore UpdateService doc; Terraform reports);
        # the other fields reuse it: the doc names them but I found no verbatim message.
        return (
            f"Unable to update {what} on services with a CODE_DEPLOY deployment controller. "
            "Use AWS CodeDeploy to trigger a new deployment."
        )
    # EXTERNAL: the doc says "create a new task set"; wording not confirmed verbatim.
    return (
        f"Unable to update {what} on services with an EXTERNAL deployment controller. "  # noqa: S608
        "Use a new task set (CreateTaskSet) instead."
    )


def forwarded_target_groups(actions: Iterable[Any]) -> set[str]:
    """Return the target group ARNs that ``actions`` (FakeActions or dicts) forward to."""
    arns: set[str] = set()
    for action in actions:
        data = action if isinstance(action, dict) else action.data
        if data.get("Type") != "forward":
            continue
        if data.get("TargetGroupArn"):
            arns.add(data["TargetGroupArn"])
        for group in (data.get("ForwardConfig") or {}).get("TargetGroups", []):
            arns.add(group["TargetGroupArn"])
    return arns


def oidc_refusal(actions: Iterable[dict[str, Any]], modifying: bool) -> str | None:
    """Return ELB's refusal of authenticate-oidc ``actions`` that lack a client secret, or None."""
    for action in actions:
        if action.get("Type") != "authenticate-oidc":
            continue
        config = action.get("AuthenticateOidcConfig") or {}
        reuse = str(config.get("UseExistingClientSecret", "")).lower() == "true"
        if not config.get("ClientSecret") and not (modifying and reuse):
            # Wording is ours; the rule is the AuthenticateOidcActionConfig doc's.
            return "A client secret must be specified for the authenticate-oidc action" + (
                " unless UseExistingClientSecret is true" if modifying else ""
            )
    return None


# AuthenticateOidcActionConfig doc defaults, which Describe* reports when they were left out.
_OIDC_DEFAULTS = {
    "SessionCookieName": "AWSELBAuthSessionCookie",
    "Scope": "openid",
    "SessionTimeout": 604800,
    "OnUnauthenticatedRequest": "authenticate",
}

# --- the rules, as moto's replaced methods apply them -------------------------------------------------

#: the ELBv2 backend methods that write listener or rule actions
OIDC_WRITERS = ("create_listener", "modify_listener", "create_rule", "modify_rule")


def _associated_target_groups(account: str, region: str) -> set[str]:
    elbv2 = get_backend("elbv2")[account][region]
    used: set[str] = set()
    for balancer in elbv2.load_balancers.values():
        for listener in balancer.listeners.values():
            used |= forwarded_target_groups(listener.default_actions)
            for rule in listener.rules.values():
                used |= forwarded_target_groups(rule.actions)
    return used


def check_create_service(account: str, region: str, params: dict[str, Any]) -> None:
    """Raise ECS's InvalidParameterException for a target group that no load balancer uses."""
    groups = [lb["targetGroupArn"] for lb in params.get("loadBalancers") or [] if lb.get("targetGroupArn")]
    if not groups:
        return
    used = _associated_target_groups(account, region)
    for arn in groups:
        if arn not in used:
            raise InvalidParameterException(
                f"The target group with targetGroupArn {arn} does not have an associated load balancer."
            )


def keep_dropped_members(service: Any, params: dict[str, Any]) -> None:
    """Store on moto's new service the CreateService members moto dropped."""
    for member, attribute in KEPT_ON_CREATE.items():
        if params.get(member) is not None:
            setattr(service, attribute, params[member])
    if params.get("capacityProviderStrategy") and not params.get("launchType"):
        service.launch_type = None  # ECS: a capacity provider strategy, not a launch type


def check_update_service(service: Any, params: dict[str, Any]) -> None:
    """Raise ECS's InvalidParameterException for what the service's deployment controller forbids."""
    refusal = update_refusal(service.deployment_controller.get("type", "ECS"), params)
    if refusal:
        raise InvalidParameterException(refusal)


def hide_oidc_secret(action: FakeAction, data: dict[str, Any]) -> None:
    """Move an authenticate-oidc action's secret out of its config and fill in ELB's defaults."""
    config = data.get("AuthenticateOidcConfig")
    if data.get("Type") != "authenticate-oidc" or not isinstance(config, dict):
        return
    # The secret lives beside the config, so no Describe* can return it.
    action.client_secret = config.pop("ClientSecret", None)  # type: ignore[attr-defined]
    action.reuse_secret = str(config.pop("UseExistingClientSecret", "")).lower() == "true"  # type: ignore[attr-defined]
    for key, value in _OIDC_DEFAULTS.items():
        config.setdefault(key, value)


def _secret_of(actions: Iterable[Any]) -> str | None:
    return next(
        (getattr(a, "client_secret", None) for a in actions if getattr(a, "client_secret", None)), None
    )


def check_oidc_write(backend: ELBv2Backend, writer: str, arguments: dict[str, Any]) -> str | None:
    """Raise ELB's refusal of the write's actions, or return the secret the modified actions held."""
    actions = arguments.get("actions") or []
    modifying = writer.startswith("modify")
    refusal = oidc_refusal(actions, modifying)
    if refusal:
        raise ELBClientError("InvalidConfigurationRequest", refusal)
    if not (modifying and actions):
        return None
    if writer == "modify_listener":
        return _secret_of(backend.describe_listeners(None, [arguments["arn"]])[0].default_actions)
    return _secret_of(backend.describe_rules(None, [arguments["rule_arn"]])[0].actions)


def keep_oidc_secret(written: Any, writer: str, previous: str | None) -> None:
    """Give actions written with UseExistingClientSecret the secret they had (ELB keeps it)."""
    for action in written.default_actions if writer.endswith("listener") else written.actions:
        if getattr(action, "reuse_secret", False):
            action.client_secret = previous


# --- on and off ---------------------------------------------------------------------------------------

_installed = False


def install(profile: Realism) -> bool:
    """Switch the rules on when ``profile.enforce_aws_rules``; return whether they are on."""
    global _installed
    _installed = _installed or profile.enforce_aws_rules
    return _installed


def uninstall() -> None:
    """Switch the rules off (moto answers as moto does)."""
    global _installed
    _installed = False


def installed() -> bool:
    """Return whether the rules are on."""
    return _installed
