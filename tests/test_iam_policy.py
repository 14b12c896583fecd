"""The worker's IAM policy (docs/iam-policy.json) names every AWS action the code calls, and no more.

The calls are found by reading the source (every code path, deterministically): each attribute taken
from a boto3 client the adapters hold (``self._clients.ecs.update_service``, a local ``ecs =
self._clients.ecs`` then ``ecs.list_tasks``, ``self._clients.client("logs").create_log_group``,
``get_paginator("...")``) is mapped to its API operation through botocore's own service model.
Issue 9, the worker's point 10.
"""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "deploy_agent"
POLICY = ROOT / "docs" / "iam-policy.json"

#: the ``AwsClients`` properties, by boto3 service name
CLIENT_PROPERTIES = {"ecs": "ecs", "ecr": "ecr", "elbv2": "elbv2", "cloudwatch": "cloudwatch"}
#: boto3 service name -> IAM action prefix (CloudWatch signs as "monitoring" but its actions are
#: "cloudwatch:*"; ELBv2's are "elasticloadbalancing:*")
IAM_PREFIX = {
    "ecs": "ecs",
    "ecr": "ecr",
    "elbv2": "elasticloadbalancing",
    "cloudwatch": "cloudwatch",
    "logs": "logs",
    "sqs": "sqs",
    "events": "events",
}
#: API operations whose IAM action is another's: SQS's batch calls are granted by the single ones
#: ("You cannot set permissions explicitly for ... DeleteMessageBatch", SQS developer guide,
#: sqs-batch-api.html)
IAM_ACTION_OF = {"sqs:DeleteMessageBatch": "sqs:DeleteMessage"}
#: actions the policy needs that are no boto3 call of ours, each with why
NOT_A_CLIENT_CALL = {
    # docker push to ECR with the GetAuthorizationToken credentials: the registry API checks these
    # (https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-push-iam.html)
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    # RegisterTaskDefinition with a task or execution role
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html)
    "iam:PassRole",
    # tags on RegisterTaskDefinition / CreateService (tagging on create)
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/supported-iam-actions-tagging.html)
    "ecs:TagResource",
}


@cache
def operations(service: str) -> dict[str, str]:
    """Return botocore's operations of ``service`` by boto3 method name (``update_service``)."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def _client_of(node: ast.expr, local_clients: dict[str, str]) -> str | None:
    """Return the boto3 service ``node`` evaluates to a client of, or None."""
    if isinstance(node, ast.Name):
        return local_clients.get(node.id)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "_clients"
        and node.attr in CLIENT_PROPERTIES
    ):
        return CLIENT_PROPERTIES[node.attr]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "client"
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "_clients"
    ):
        arg = node.args[0] if node.args else None
        if not isinstance(arg, ast.Constant) or not isinstance(arg.value, str):
            raise AssertionError(f"line {node.lineno}: a client named at run time cannot be checked")
        return arg.value
    return None


def called_actions(path: Path) -> dict[str, str]:
    """Return ``{"ecs:UpdateService": "file:line", ...}`` for the client calls in one module."""
    found: dict[str, str] = {}
    tree = ast.parse(path.read_text(), filename=str(path))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        local_clients: dict[str, str] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                service = _client_of(node.value, local_clients)
                if isinstance(target, ast.Name) and service is not None:
                    local_clients[target.id] = service
        for node in ast.walk(function):
            if not isinstance(node, ast.Attribute):
                continue
            service = _client_of(node.value, local_clients)
            if service is None:
                continue
            method = node.attr
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if method in ("get_paginator", "get_waiter", "meta", "exceptions"):
                continue  # the paginated operation is found below, from the call's argument
            known = operations(service)
            assert method in known, f"{where}: {service}.{method} is no {service} API operation"
            action = f"{IAM_PREFIX[service]}:{known[method]}"
            found.setdefault(IAM_ACTION_OF.get(action, action), where)
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get_paginator"
                and (service := _client_of(node.func.value, local_clients)) is not None
            ):
                arg = node.args[0]
                assert isinstance(arg, ast.Constant), f"line {node.lineno}: paginator named at run time"
                found.setdefault(f"{IAM_PREFIX[service]}:{operations(service)[str(arg.value)]}", str(path))
    return found


def worker_actions() -> dict[str, str]:
    """Return every AWS action the worker's code calls (the sandbox, which provisions, is not the worker)."""
    found: dict[str, str] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        if "sandbox" in path.relative_to(SOURCE).parts or path.name == "testing.py":
            continue
        found.update({k: v for k, v in called_actions(path).items() if k not in found})
    return found


def policy_actions() -> set[str]:
    document = json.loads(POLICY.read_text())
    actions: set[str] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow", statement
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_the_scan_finds_the_calls_we_know() -> None:
    """The scanner itself: it sees direct, local-variable, ``client("logs")`` and paginated calls."""
    found = worker_actions()
    for action in (
        "ecs:UpdateService",  # self._clients.ecs.update_service
        "ecs:ListTasks",  # ecs = self._clients.ecs; ecs.list_tasks
        "ecr:GetAuthorizationToken",  # ecr = self._clients.ecr; ecr.get_authorization_token
        "elasticloadbalancing:ModifyListener",
        "cloudwatch:DescribeAlarms",
    ):
        assert action in found, sorted(found)


def test_every_action_the_worker_calls_is_in_the_policy() -> None:
    missing = {action: where for action, where in worker_actions().items() if action not in policy_actions()}
    assert missing == {}, f"add these to {POLICY.relative_to(ROOT)} (and the README's table): {missing}"


def test_the_policy_grants_nothing_the_worker_does_not_use() -> None:
    """Least privilege: each action is called by the code or named in ``NOT_A_CLIENT_CALL`` with why."""
    unused = policy_actions() - set(worker_actions()) - NOT_A_CLIENT_CALL
    assert unused == set(), f"the policy grants actions no code calls: {sorted(unused)}"


def test_wildcards_are_not_used_in_actions() -> None:
    assert not [a for a in policy_actions() if "*" in a]


def test_pass_role_is_only_for_ecs_tasks() -> None:
    """iam:PassRole only to ECS tasks, only for the named roles (never Resource "*")."""
    statements = [s for s in json.loads(POLICY.read_text())["Statement"] if "iam:PassRole" in s["Action"]]
    assert len(statements) == 1
    (statement,) = statements
    assert statement["Action"] == ["iam:PassRole"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    resources = statement["Resource"]
    assert resources
    assert all(r.startswith("arn:aws:iam::") and ":role/" in r for r in resources)


@pytest.mark.parametrize("action", sorted(NOT_A_CLIENT_CALL))
def test_the_readme_explains_each_action(action: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"`{action}`" in readme


def test_the_readme_explains_every_called_action() -> None:
    readme = (ROOT / "README.md").read_text()
    unexplained = [a for a in worker_actions() if f"`{a}`" not in readme]
    assert unexplained == [], "README's IAM table lacks: " + ", ".join(sorted(unexplained))
