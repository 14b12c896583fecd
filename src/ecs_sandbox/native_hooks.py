"""Lifecycle hooks and the two calls that act on a running native deployment.

At each step, the hooks configured at its hook stages run: a PAUSE hook holds the deployment with
status AWAITING_ACTION, a fresh ``hookId``, ``expiresAt`` and ``timeoutAction``, until
ContinueServiceDeployment (CONTINUE or ROLLBACK) or its timeout, which applies the timeout action and
marks it TIMED_OUT (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/pause-lifecycle-hooks.html;
botocore DeploymentLifecycleHookDetail, DeploymentLifecycleHookTimeoutConfiguration). AWS_LAMBDA hooks
are accepted and SUCCEEDED at once: the sandbox runs no Lambda function. The refusals' wordings are the
sandbox's; their codes are among those botocore lists for each operation.
"""

from __future__ import annotations

from datetime import timedelta

from moto.core.utils import utcnow
from moto.ecs.exceptions import ECSException

from .native_plan import Step, hooks_at
from .native_records import HookRun, ServiceDeployment, new_hook_id
from .native_rollback import Rollbacks
from .realism import Realism


def hooks_done(sd: ServiceDeployment, step: Step, now: float, realism: Realism, rollbacks: Rollbacks) -> bool:
    """Start the step's hooks once; return whether none of them still holds the deployment."""
    if sd.hooks_step != sd.step:
        runs = []
        for hook in hooks_at(sd.config, step.hook_stages):
            seconds = realism.scaled(hook.timeout_minutes * 60)
            paused = hook.target_type == "PAUSE"
            runs.append(
                HookRun(
                    hook_id=new_hook_id(),
                    target_type=hook.target_type,
                    status="AWAITING_ACTION" if paused else "SUCCEEDED",
                    expires_at=utcnow() + timedelta(seconds=seconds),
                    deadline=now + seconds,
                    timeout_action=hook.timeout_action,
                    target_arn=None if paused else hook.target_arn,
                )
            )
        if runs or sd.hooks:
            sd.touch(hooks=runs)
        sd.hooks_step = sd.step
    for run in sd.hooks:
        if run.status == "AWAITING_ACTION" and now >= run.deadline:
            run.status = "TIMED_OUT"
            sd.touch()
            if run.timeout_action == "ROLLBACK":
                rollbacks.request(sd, f"Lifecycle hook {run.hook_id} timed out.")
                return False
    return all(r.status != "AWAITING_ACTION" for r in sd.hooks)


def continue_hook(sd: ServiceDeployment, hook_id: str, action: str, rollbacks: Rollbacks) -> None:
    """ContinueServiceDeployment: resolve a PAUSE hook AWAITING_ACTION with CONTINUE or ROLLBACK."""
    run = next((h for h in sd.hooks if h.hook_id == hook_id), None)
    if run is None:
        raise ECSException("InvalidParameterException", f"The hook {hook_id} was not found for {sd.arn}.")
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/continue-service-deployment.html:
    # "The pause hook must be in AWAITING_ACTION status"; "The deployment must be in the IN_PROGRESS state".
    if run.status != "AWAITING_ACTION" or sd.status != "IN_PROGRESS":
        raise ECSException(
            "ClientException",
            f"The hook {hook_id} is {run.status} (not AWAITING_ACTION) in a {sd.status} service deployment.",
        )
    run.status = "SUCCEEDED" if action == "CONTINUE" else "FAILED"
    sd.touch()
    if action == "ROLLBACK":
        rollbacks.request(sd, f"Rolled back at lifecycle hook {hook_id} by ContinueServiceDeployment.")


def stop_deployment(sd: ServiceDeployment, stop_type: str, rollbacks: Rollbacks) -> None:
    """StopServiceDeployment: ROLLBACK (the default) or ABORT a deployment that has not ended.

    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stop-service-deployment.html: from
    PENDING or IN_PROGRESS it moves to ROLLBACK_REQUESTED; a rollback or stop already asked for goes
    on. An ended deployment, or one cleaning up its old revision, is a ConflictException.
    """
    if sd.status in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED"):
        return
    if sd.finished or sd.lifecycle_stage == "CLEAN_UP":
        raise ECSException(
            "ConflictException", f"The service deployment {sd.arn} is {sd.status}: it cannot stop."
        )
    if stop_type == "ABORT":
        rollbacks.stop(sd, "Service deployment stopped by StopServiceDeployment.")
    else:
        rollbacks.request(sd, "Service deployment rolled back by StopServiceDeployment.")
