"""Preflight of a blue/green or canary load balancer setup: describe shapes in, problems out."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_agent.core.preflight import Problem, check_load_balancer_setup

_ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
LB = _ELB + "loadbalancer/app/web/aaaa"
OTHER_LB = _ELB + "loadbalancer/app/other/bbbb"
LISTENER = _ELB + "listener/app/web/aaaa/1111"
TEST_LISTENER = _ELB + "listener/app/web/aaaa/2222"
BLUE = _ELB + "targetgroup/web-blue/1111"
GREEN = _ELB + "targetgroup/web-green/2222"
THIRD = _ELB + "targetgroup/web-old/3333"

F_LISTENER = "strategy.load_balancer.listener_arn"
F_BLUE = "strategy.load_balancer.blue_target_group_arn"
F_GREEN = "strategy.load_balancer.green_target_group_arn"
F_TEST = "strategy.load_balancer.test_listener_arn"


def target_group(arn: str, **overrides: Any) -> dict[str, Any]:
    group = {
        "TargetGroupArn": arn,
        "TargetType": "ip",
        "Protocol": "HTTP",
        "Port": 80,
        "VpcId": "vpc-1",
        "LoadBalancerArns": [LB],
    }
    group.update(overrides)
    return group


def weighted(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    groups = [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in pairs]
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]


def setup(**changes: Any) -> dict[str, Any]:
    """Return check_load_balancer_setup's arguments for a usable setup, with ``changes`` applied."""
    arguments: dict[str, Any] = {
        "listener": {
            "ListenerArn": LISTENER,
            "LoadBalancerArn": LB,
            "Protocol": "HTTP",
            "Port": 80,
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": BLUE}],
        },
        "blue_tg": target_group(BLUE),
        "green_tg": target_group(GREEN),
        "test_listener": None,
        "container_port": 8080,
        "service_load_balancers": [{"targetGroupArn": BLUE, "containerName": "web", "containerPort": 8080}],
        "blue_arn": BLUE,
        "green_arn": GREEN,
        "test_listener_arn": None,
        "container_name": "web",
    }
    arguments.update(changes)
    return arguments


def with_listener(**fields: Any) -> dict[str, Any]:
    listener = dict(setup()["listener"])
    listener.update(fields)
    return setup(listener=listener)


CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    ("a listener forwarding plainly to blue is usable", setup(), []),
    (
        "a weighted forward with all weight on blue is usable",
        with_listener(DefaultActions=weighted((BLUE, 100), (GREEN, 0))),
        [],
    ),
    (
        "a test listener on the same load balancer is usable",
        setup(
            test_listener={"ListenerArn": TEST_LISTENER, "LoadBalancerArn": LB},
            test_listener_arn=TEST_LISTENER,
        ),
        [],
    ),
    (
        "a target group port other than the container port is fine for ip targets",
        setup(green_tg=target_group(GREEN, Port=9999)),
        [],
    ),
    (
        "an unknown container port skips the port comparison",
        setup(container_port=None, container_name=None),
        [],
    ),
    ("a missing listener is reported", setup(listener=None), [(F_LISTENER, "listener does not exist")]),
    (
        "a listener that does not forward is reported",
        with_listener(DefaultActions=[{"Type": "redirect", "RedirectConfig": {"Port": "443"}}]),
        [(F_LISTENER, "listener's default action does not forward to a target group")],
    ),
    (
        "a leftover split to green from a crashed deployment is reported",
        with_listener(DefaultActions=weighted((BLUE, 90), (GREEN, 10))),
        [(F_LISTENER, "listener already sends traffic to the green target group")],
    ),
    (
        "a listener forwarding to a third group is reported",
        with_listener(DefaultActions=[{"Type": "forward", "TargetGroupArn": THIRD}]),
        [(F_LISTENER, "listener does not forward to the blue target group")],
    ),
    (
        "a listener splitting blue with a third group is reported",
        with_listener(DefaultActions=weighted((BLUE, 50), (THIRD, 50))),
        [(F_LISTENER, f"listener also sends traffic to {THIRD}, not only to blue")],
    ),
    (
        "a missing blue target group is reported",
        setup(blue_tg=None),
        [(F_BLUE, "target group does not exist")],
    ),
    (
        "a missing green target group is reported",
        setup(green_tg=None),
        [(F_GREEN, "target group does not exist")],
    ),
    (
        "one group named as blue and green is reported",
        setup(green_arn=BLUE, green_tg=target_group(BLUE)),
        [(F_GREEN, "must differ from blue_target_group_arn")],
    ),
    (
        "an instance target group cannot take Fargate tasks",
        setup(green_tg=target_group(GREEN, TargetType="instance")),
        [(F_GREEN, "target type is instance; awsvpc (Fargate) tasks need target type ip")],
    ),
    (
        "target groups in different VPCs are reported",
        setup(green_tg=target_group(GREEN, VpcId="vpc-2")),
        [(F_GREEN, "target group is in VPC vpc-2, the blue one in vpc-1")],
    ),
    (
        "blue and green speaking different protocols are reported",
        setup(green_tg=target_group(GREEN, Protocol="HTTPS")),
        [(F_GREEN, "protocol HTTPS differs from the blue target group's HTTP")],
    ),
    (
        "a TCP group behind an HTTP listener is reported for both groups",
        setup(blue_tg=target_group(BLUE, Protocol="TCP"), green_tg=target_group(GREEN, Protocol="TCP")),
        [
            (F_BLUE, "protocol TCP cannot serve the listener's HTTP"),
            (F_GREEN, "protocol TCP cannot serve the listener's HTTP"),
        ],
    ),
    (
        "a green group attached to another load balancer is reported",
        setup(green_tg=target_group(GREEN, LoadBalancerArns=[OTHER_LB])),
        [(F_GREEN, f"target group is attached to another load balancer: {OTHER_LB}")],
    ),
    (
        "a green group no load balancer uses is reported (CreateService would refuse it)",
        setup(green_tg=target_group(GREEN, LoadBalancerArns=[])),
        [
            (
                F_GREEN,
                "target group is not used by any load balancer, so ECS cannot register tasks with it "
                "(CreateService fails); attach it to the listener's load balancer, e.g. with a test "
                "listener or a listener rule",
            )
        ],
    ),
    (
        "a missing test listener is reported",
        setup(test_listener_arn=TEST_LISTENER),
        [(F_TEST, "test listener does not exist")],
    ),
    (
        "a test listener on another load balancer is reported",
        setup(
            test_listener={"ListenerArn": TEST_LISTENER, "LoadBalancerArn": OTHER_LB},
            test_listener_arn=TEST_LISTENER,
        ),
        [(F_TEST, "test listener belongs to another load balancer than listener_arn")],
    ),
    (
        "a service without load balancers is reported",
        setup(service_load_balancers=[]),
        [("service_name", "service is not registered with any target group; it must use the blue one")],
    ),
    (
        "a service registered with green means blue and green are swapped",
        setup(
            service_load_balancers=[{"targetGroupArn": GREEN, "containerName": "web", "containerPort": 8080}]
        ),
        [(F_BLUE, "service registers with the green target group: blue and green are swapped")],
    ),
    (
        "a service registered with an unrelated group is reported",
        setup(
            service_load_balancers=[{"targetGroupArn": THIRD, "containerName": "web", "containerPort": 8080}]
        ),
        [(F_BLUE, f"service does not register with this target group (it uses {THIRD})")],
    ),
    (
        "a service entry without a container port is reported",
        setup(service_load_balancers=[{"targetGroupArn": BLUE, "containerName": "web"}]),
        [("service_name", "service registers with the blue target group without a containerPort")],
    ),
    (
        "a service registering another port than the container's is reported",
        setup(container_port=9090),
        [
            (
                "service_name",
                "service registers port 8080 with the blue target group; the container listens on 9090",
            )
        ],
    ),
    (
        "a service registering another container is reported",
        setup(container_name="api"),
        [("container_name", "service registers container web with the blue target group, not api")],
    ),
    (
        "every problem is reported at once, in field order",
        setup(listener=None, green_tg=None, service_load_balancers=[]),
        [
            (F_LISTENER, "listener does not exist"),
            (F_GREEN, "target group does not exist"),
            ("service_name", "service is not registered with any target group; it must use the blue one"),
        ],
    ),
]


@pytest.mark.parametrize(("arguments", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_load_balancer_setup(arguments: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """Each misconfiguration gives one problem naming the message field at fault."""
    problems = check_load_balancer_setup(**arguments)
    assert [(p.field, p.problem) for p in problems] == expected


def test_problem_has_the_request_rejected_shape() -> None:
    """A problem converts to the {field, problem} dict RequestRejected.errors holds."""
    problem = Problem(F_BLUE, "target group does not exist")
    assert problem.as_dict() == {"field": F_BLUE, "problem": "target group does not exist"}
