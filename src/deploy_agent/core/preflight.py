"""Is the load balancer setup a blue/green or canary message names usable? Pure.

The shell describes the listeners, target groups and ECS service (None for what does not exist)
and gets back one :class:`Problem` per misconfiguration, each naming the message field at fault
by its snake_case path, so the worker can reject the deployment before touching anything.

What counts as a misconfiguration, and what does not:

* ECS registers awsvpc (Fargate) tasks by IP address, so both groups need target type ``ip``.
* A target group's own port does **not** have to equal the container port: for ``ip`` targets the
  service registers each task with the ``containerPort`` of its ``loadBalancers`` entry, which
  overrides the group's port. What must hold is that the service registers with the *blue* group
  at all, with a ``containerPort``, and (when known) the container and port the new task
  definition actually exposes.
* Blue and green must be distinct groups in one VPC, speak the same protocol, and that protocol
  must suit the listener (HTTP/HTTPS groups behind an ALB listener, TCP/TLS/UDP behind an NLB).
  A group already attached to a different load balancer cannot be attached to this listener, and
  a group no load balancer uses cannot take ECS tasks at all (CreateService refuses it).
* Listener rules that forward only to blue move with the default action; a rule that splits
  blue with another group, or already sends to green, is refused (``plan_rule_shifts``).
* Before a deployment the listener must send everything to blue. Weight already on green is a
  leftover of an interrupted deployment; starting over it would be rolled back to the wrong place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploy_agent.core.traffic import listener_forward_action, listener_forward_weights, plan_rule_shifts

_PREFIX = "strategy.load_balancer."
LISTENER = _PREFIX + "listener_arn"
BLUE = _PREFIX + "blue_target_group_arn"
GREEN = _PREFIX + "green_target_group_arn"
TEST_LISTENER = _PREFIX + "test_listener_arn"
SERVICE = "service_name"
CONTAINER = "container_name"

_ALB_PROTOCOLS = frozenset({"HTTP", "HTTPS"})
_NLB_PROTOCOLS = frozenset({"TCP", "TLS", "UDP", "TCP_UDP"})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the setup: ``field`` is the message's snake_case path."""

    field: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        """Return the ``{"field", "problem"}`` shape that ``RequestRejected.errors`` carries."""
        return {"field": self.field, "problem": self.problem}


def check_load_balancer_setup(
    *,
    listener: Mapping[str, Any] | None,
    blue_tg: Mapping[str, Any] | None,
    green_tg: Mapping[str, Any] | None,
    test_listener: Mapping[str, Any] | None,
    container_port: int | None,
    service_load_balancers: Sequence[Mapping[str, Any]],
    blue_arn: str,
    green_arn: str,
    test_listener_arn: str | None,
    container_name: str | None = None,
    rules: Sequence[Mapping[str, Any]] = (),
) -> list[Problem]:
    """Return the problems of the setup (none when it is usable), in the order of the message's fields.

    ``listener``/``blue_tg``/``green_tg``/``test_listener`` are ELBv2 describe shapes (None when the
    resource does not exist); ``service_load_balancers`` is the ECS service's ``loadBalancers``;
    ``container_port``/``container_name`` describe the new task definition when known; ``rules``
    are the listener's rules (DescribeRules), checked by ``plan_rule_shifts``.
    """
    problems: list[Problem] = []
    problems += _check_listener(listener, blue_arn, green_arn)
    problems += [Problem(LISTENER, why) for why in plan_rule_shifts(rules, blue_arn, green_arn).refusals]
    problems += _check_target_groups(listener, blue_tg, green_tg, blue_arn, green_arn)
    problems += _check_test_listener(listener, test_listener, test_listener_arn)
    problems += _check_service(service_load_balancers, blue_arn, green_arn, container_port, container_name)
    return problems


def _check_listener(listener: Mapping[str, Any] | None, blue_arn: str, green_arn: str) -> list[Problem]:
    if listener is None:
        return [Problem(LISTENER, "listener does not exist")]
    if listener_forward_action(listener) is None:
        return [Problem(LISTENER, "listener's default action does not forward to a target group")]
    weights = listener_forward_weights(listener)
    if green_arn != blue_arn and weights.get(green_arn, 0) > 0:
        return [Problem(LISTENER, "listener already sends traffic to the green target group")]
    if weights.get(blue_arn, 0) <= 0:
        return [Problem(LISTENER, "listener does not forward to the blue target group")]
    others = sorted(arn for arn, weight in weights.items() if weight > 0 and arn != blue_arn)
    if others:
        return [Problem(LISTENER, f"listener also sends traffic to {', '.join(others)}, not only to blue")]
    return []


def _check_target_groups(
    listener: Mapping[str, Any] | None,
    blue_tg: Mapping[str, Any] | None,
    green_tg: Mapping[str, Any] | None,
    blue_arn: str,
    green_arn: str,
) -> list[Problem]:
    problems: list[Problem] = []
    if blue_arn == green_arn:
        return [Problem(GREEN, "must differ from blue_target_group_arn")]
    for field, tg in ((BLUE, blue_tg), (GREEN, green_tg)):
        if tg is None:
            problems.append(Problem(field, "target group does not exist"))
            continue
        problems += _check_one_group(field, tg, listener)
    if blue_tg is None or green_tg is None:
        return problems
    if blue_tg.get("VpcId") != green_tg.get("VpcId"):
        problems.append(
            Problem(
                GREEN,
                f"target group is in VPC {green_tg.get('VpcId')}, the blue one in {blue_tg.get('VpcId')}",
            )
        )
    if blue_tg.get("Protocol") != green_tg.get("Protocol"):
        problems.append(
            Problem(
                GREEN,
                f"protocol {green_tg.get('Protocol')} differs from the blue target group's "
                f"{blue_tg.get('Protocol')}",
            )
        )
    return problems


def _check_one_group(field: str, tg: Mapping[str, Any], listener: Mapping[str, Any] | None) -> list[Problem]:
    problems: list[Problem] = []
    target_type = tg.get("TargetType")
    if target_type != "ip":
        problems.append(
            Problem(field, f"target type is {target_type}; awsvpc (Fargate) tasks need target type ip")
        )
    if listener is None:
        return problems
    lb_arn = listener.get("LoadBalancerArn")
    attached = [str(arn) for arn in tg.get("LoadBalancerArns") or []]
    if not attached:
        # CreateService refuses it: "InvalidParameterException: The target group with
        # targetGroupArn ... does not have an associated load balancer" (hashicorp/terraform#32908)
        problems.append(
            Problem(
                field,
                "target group is not used by any load balancer, so ECS cannot register tasks with it "
                "(CreateService fails); attach it to the listener's load balancer, e.g. with a test "
                "listener or a listener rule",
            )
        )
    elif lb_arn not in attached:
        problems.append(Problem(field, f"target group is attached to another load balancer: {attached[0]}"))
    if not _protocols_fit(listener.get("Protocol"), tg.get("Protocol")):
        problems.append(
            Problem(
                field,
                f"protocol {tg.get('Protocol')} cannot serve the listener's {listener.get('Protocol')}",
            )
        )
    return problems


def _protocols_fit(listener_protocol: object, tg_protocol: object) -> bool:
    for family in (_ALB_PROTOCOLS, _NLB_PROTOCOLS):
        if listener_protocol in family:
            return tg_protocol in family
    return True  # a protocol we do not know (GENEVE, a new one): let AWS judge


def _check_test_listener(
    listener: Mapping[str, Any] | None, test_listener: Mapping[str, Any] | None, test_listener_arn: str | None
) -> list[Problem]:
    if test_listener_arn is None:
        return []
    if test_listener is None:
        return [Problem(TEST_LISTENER, "test listener does not exist")]
    if listener is not None and test_listener.get("LoadBalancerArn") != listener.get("LoadBalancerArn"):
        return [Problem(TEST_LISTENER, "test listener belongs to another load balancer than listener_arn")]
    return []


def _check_service(
    entries: Sequence[Mapping[str, Any]],
    blue_arn: str,
    green_arn: str,
    container_port: int | None,
    container_name: str | None,
) -> list[Problem]:
    if not entries:
        return [Problem(SERVICE, "service is not registered with any target group; it must use the blue one")]
    blue = [e for e in entries if e.get("targetGroupArn") == blue_arn]
    if not blue:
        if any(e.get("targetGroupArn") == green_arn for e in entries):
            return [
                Problem(BLUE, "service registers with the green target group: blue and green are swapped")
            ]
        registered = ", ".join(sorted(str(e.get("targetGroupArn")) for e in entries))
        return [Problem(BLUE, f"service does not register with this target group (it uses {registered})")]
    entry = blue[0]
    port = entry.get("containerPort")
    if port is None:
        return [Problem(SERVICE, "service registers with the blue target group without a containerPort")]
    problems: list[Problem] = []
    if container_name is not None and entry.get("containerName") != container_name:
        problems.append(
            Problem(
                CONTAINER,
                f"service registers container {entry.get('containerName')} with the blue target group, "
                f"not {container_name}",
            )
        )
    if container_port is not None and port != container_port:
        problems.append(
            Problem(
                SERVICE,
                f"service registers port {port} with the blue target group; "
                f"the container listens on {container_port}",
            )
        )
    return problems
