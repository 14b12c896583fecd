"""The dry-run plan: ``deploy_agent.plan`` and ``deploy-agent plan FILE``. Nothing is changed.

A plan answers, for one ``DeployToECSTask`` message: is it valid, does the operator's policy allow
it, what would the preflight say, which task definition would be registered (a diff against the
service's current one), which steps the strategy would take, and whether a human must approve it.

Only reads reach AWS, and only when the message is valid and inside the policy (what a message may
not deploy it may not look at either): DescribeServices, DescribeTaskDefinition, the traffic
strategies' ELB and CloudWatch reads, and DescribeLogGroups for a log group the task definition
names. The AWS adapters are wrapped so that any other call raises (``ReadOnly``); no Docker build,
no push, no Redis write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task

from deploy_agent.adapters.read_only import ReadOnly
from deploy_agent.core.errors import AwsNotFound, DeployError, RequestRejected
from deploy_agent.core.orchestration import plan_chain
from deploy_agent.core.plan import plan_steps
from deploy_agent.core.plan_context import PlanContext
from deploy_agent.core.policy import check_request
from deploy_agent.core.state import PipelineState
from deploy_agent.core.taskdef import (
    default_log_configuration,
    plan_from_spec,
    plan_log_groups,
    plan_task_definition,
)
from deploy_agent.core.taskdef_diff import diff_task_definition
from deploy_agent.models import DeployToECSTask, parse_request
from deploy_agent.strategies import Ports, Run, strategy_for
from deploy_agent.strategies.steps.temp_service import temp_service_name
from deploy_agent.tasks.entry import plan_deployment
from deploy_agent.tasks.preflight import preflight as run_preflight
from deploy_agent.tasks.runtime import Runtime, get_runtime

log = logging.getLogger("deploy_agent.plan")


def _approval(rt: Runtime, region: str, cluster: str, service: str) -> dict[str, Any] | None:
    policy = rt.policy
    rule = policy.approval_for(region, cluster, service) if policy is not None else None
    if rule is None:
        return None
    return {"rule": rule.name, "timeout_seconds": rule.timeout_seconds}


def _result(deployment_id: str | None) -> dict[str, Any]:
    return {
        "deployment_id": deployment_id,
        "valid": False,
        "errors": [],
        "policy": {"set": False, "allowed": None, "violations": []},
        "preflight": {"ran": False, "ok": None, "problems": []},
        "task_definition": None,
        "steps": [],
        "approval": None,
        "would_deploy": False,
    }


def plan_request(request: Any, rt: Runtime | None = None) -> dict[str, Any]:
    """Return the plan of a deployment as JSON (see the module doc); never changes anything."""
    rt = rt or get_runtime()
    raw_id = request.get("deployment_id") if isinstance(request, dict) else None
    result = _result(str(raw_id) if raw_id else None)
    try:
        message = parse_request(request)
    except RequestRejected as exc:
        result["errors"] = exc.errors or [{"field": "", "problem": exc.message}]
        return result
    result["deployment_id"] = str(message.deployment_id)
    region = message.region or rt.settings.aws_region
    result["approval"] = _approval(rt, region, message.cluster_name, message.service_name)
    policy = rt.policy
    if policy is not None:
        violations = [v.as_dict() for v in check_request(policy, message, region)]
        result["policy"] = {"set": True, "allowed": not violations, "violations": violations}
    else:
        violations = []
        result["policy"] = {"set": False, "allowed": True, "violations": []}
    try:
        # the accept-time checks of a deployment (build context, ...); the policy's are above
        state = plan_deployment(rt, message.model_dump(mode="json")) if not violations else None
    except RequestRejected as exc:
        result["errors"] = exc.errors or [{"field": "", "problem": exc.message}]
        return result
    result["valid"] = True
    if state is None:
        return result  # outside the policy: not even looked at on AWS

    problems: list[dict[str, str]] = []
    ecs: Any = ReadOnly(rt.ecs(region), "ecs")
    strategy = strategy_for(state.strategy)
    ports: Any = {
        "elb": ReadOnly(rt.elb(region), "elb"),
        "alarms": ReadOnly(rt.alarms(region), "cloudwatch"),
        "prober": ReadOnly(rt.prober, "http"),
        "traffic": ReadOnly(rt.traffic_watch, "traffic"),
        "revisions": ReadOnly(object(), "revisions"),
    }
    run: Run[Any] = Run(
        state=state,
        request=message,
        memory=strategy.memory.model_validate(state.strategy_state),
        ports=Ports(ecs=ecs, clock=rt.now, **ports),
        emit=lambda *_a, **_k: None,
    )
    service: dict[str, Any] | None = None
    try:
        run_preflight(rt, run)
        service = ecs.describe_service(state.cluster, state.service)
    except AwsNotFound as exc:
        problems.append({"field": "service_name", "problem": exc.message})
    except DeployError as exc:
        problems.append({"field": "", "problem": f"could not read AWS: {exc.message}"})
    if state.failure is not None:
        problems += state.rejections or [{"field": "", "problem": state.failure.message}]
    planned = None
    if service is not None:
        planned = _task_definition(rt, ecs, state, message, service, problems)
        result["task_definition"] = planned
    result["preflight"] = {"ran": True, "ok": not problems, "problems": problems}

    every = list(strategy.stages)
    idle = plan_chain(every, message).idle
    ctx = PlanContext(
        cluster=state.cluster,
        service=state.service,
        request=message,
        image=_image(message, state.deployment_id),
        family=(planned or {}).get("family"),
        desired_count=_desired(message, service),
        service_config=(service or {}).get("deploymentConfiguration") or {},
        temp_service=None
        if state.strategy == "rolling"
        else temp_service_name(state.service, state.deployment_id, _temp_kind(state.strategy)),
        log_groups_created=[
            g["group"] for g in (planned or {}).get("log_groups", []) if g["action"] == "create"
        ],
        timeout_seconds=message.timeout_seconds or rt.settings.default_timeout_seconds,
        approval_rule=(result["approval"] or {}).get("rule"),
        approval_timeout_seconds=(result["approval"] or {}).get("timeout_seconds"),
        weights=[(p.weight, p.pause_seconds) for p in strategy.weights(message)],
    )
    result["steps"] = [s.as_dict() for s in plan_steps(every, idle, strategy.recipe(message), ctx)]
    result["would_deploy"] = not problems
    return result


def _image(message: DeployToECSTask, deployment_id: str) -> str:
    if message.image.uri is not None:
        return message.image.uri
    return f"{message.image.repository}:{message.image.tag or deployment_id} (to be built)"


def _desired(message: DeployToECSTask, service: dict[str, Any] | None) -> int | None:
    if message.desired_count is not None:
        return message.desired_count
    count = (service or {}).get("desiredCount")
    return int(count) if count is not None else None


def _temp_kind(strategy: str) -> str:
    return "green" if strategy == "blue_green" else strategy


def _task_definition(
    rt: Runtime,
    ecs: Any,
    state: PipelineState,
    message: DeployToECSTask,
    service: dict[str, Any],
    problems: list[dict[str, str]],
) -> dict[str, Any]:
    """Plan the revision the register stage would register, as ``steps.register`` does; note problems."""
    current_arn = str(service.get("taskDefinition") or "")
    image = _image(message, state.deployment_id)
    try:
        current: dict[str, Any] | None = ecs.describe_task_definition(current_arn)
    except AwsNotFound as exc:
        current = None
        if message.task_definition is None:
            problems.append({"field": "task_definition", "problem": exc.message})
            return {"family": None, "current": current_arn, "image": image, "diff": [], "log_groups": []}
    try:
        if message.task_definition is not None:
            user = plan_from_spec(message.task_definition.to_register_kwargs(), image, message.container_name)
        else:
            assert current is not None
            user = plan_task_definition(current, image, message.container_name)
    except RequestRejected as exc:
        problems += exc.errors or [{"field": "task_definition", "problem": exc.message}]
        return {"family": None, "current": current_arn, "image": image, "diff": [], "log_groups": []}
    planned = default_log_configuration(user, state.region)
    groups: list[dict[str, str]] = []
    for plan in plan_log_groups(user, planned, state.region):
        if plan.create:
            groups.append({"group": plan.group, "region": plan.region, "action": "create"})
            continue
        exists = ReadOnly(rt.logs(plan.region), "logs").log_group_exists(plan.group)
        groups.append(
            {"group": plan.group, "region": plan.region, "action": "exists" if exists else "missing"}
        )
        if not exists:
            problems.append(
                {
                    "field": "task_definition",
                    "problem": f"the awslogs log group {plan.group} does not exist in {plan.region}; "
                    "its tasks could not start",
                }
            )
    return {
        "family": planned.get("family"),
        "current": current_arn,
        "image": image,
        "diff": diff_task_definition(current, planned),
        "log_groups": groups,
    }


def _plan_task(request: Any = None) -> dict[str, Any]:
    """Return the dry-run plan of a ``DeployToECSTask`` message (``plan_request``); changes nothing."""
    return plan_request(request)


#: the Celery task ``deploy_agent.plan`` (kwargs ``request``); read-only, so a redelivery is harmless
plan: Any = shared_task(name="deploy_agent.plan", acks_late=True)(_plan_task)


def exit_code(result: dict[str, Any]) -> int:
    """0 when the plan says the message would deploy, else 1 (the CLI's exit code)."""
    return 0 if result.get("would_deploy") else 1


def format_plan(result: dict[str, Any], out: Callable[[str], None]) -> None:
    """Write a plan for people: verdicts first, then the diff and the steps."""
    out(f"deployment {result.get('deployment_id') or '(no id)'}")
    if not result["valid"]:
        out("invalid message:")
        for error in result["errors"]:
            out(f"  {error.get('field') or '(message)'}: {error.get('problem')}")
        out("would deploy: no")
        return
    out("valid: yes")
    policy = result["policy"]
    if not policy["set"]:
        out("policy: none set (everything allowed)")
    elif policy["allowed"]:
        out("policy: allowed")
    else:
        out("policy: NOT allowed")
        for v in policy["violations"]:
            out(f"  {v['field']}: {v['problem']} (rule {v['rule']})")
    preflight = result["preflight"]
    if not preflight["ran"]:
        out("preflight: not run (outside the policy: nothing was read on AWS)")
    else:
        out("preflight: ok" if preflight["ok"] else "preflight: FAILED")
        for p in preflight["problems"]:
            out(f"  {p.get('field') or '-'}: {p.get('problem')}")
    td = result.get("task_definition")
    if td:
        out(f"task definition: new revision of {td.get('family')} (current {td.get('current')})")
        for change in td.get("diff") or ["(no changes)"]:
            out(f"  {change}")
    approval = result.get("approval")
    if approval:
        out(f"approval: required by rule {approval['rule']} (waits up to {approval['timeout_seconds']} s)")
    elif policy["set"] and policy["allowed"]:
        out("approval: not required")
    if result["steps"]:
        out("steps:")
        for n, step in enumerate(result["steps"], 1):
            name = f"{step['stage']}/{step['step']}" if step["step"] else step["stage"]
            out(f"  {n:>2}. {name}: {step['text']}")
    out(f"would deploy: {'yes' if result['would_deploy'] else 'no'}")
