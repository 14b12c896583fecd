"""The lifecycle a native deployment walks, as a list of steps (pure data, no AWS).

The stage order is ECS's (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/
deployment-lifecycle-hooks.html; botocore ServiceDeployment.lifecycleStage): RECONCILE_SERVICE,
PRE_SCALE_UP, SCALE_UP, POST_SCALE_UP, TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT,
PRODUCTION_TRAFFIC_SHIFT (once per linear/canary step), POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME,
CLEAN_UP. Each step first runs the hooks of its hook stages, then its action, then waits.
PRE_PRODUCTION_TRAFFIC_SHIFT is a hook stage only: its hooks run before *every* production shift
step (botocore DeploymentLifecycleHook.lifecycleStages: "For linear and canary deployments, this
stage is invoked before every traffic shift step"), while lifecycleStage reads
PRODUCTION_TRAFFIC_SHIFT; it never appears as a lifecycleStage (ecspresso PR #1065).
"""

from __future__ import annotations

from dataclasses import dataclass

from .native_config import Hook, NativeConfig


@dataclass(frozen=True)
class Step:
    """One step: the lifecycleStage shown, the hook stages run first, an action, a wait after it."""

    stage: str
    hook_stages: tuple[str, ...] = ()
    action: str = ""  # "", scale_up, test_shift, shift, clean_up
    percent: float = 0.0  # production share on the new revision after a shift step
    wait_minutes: float = 0.0  # AWS minutes waited after the action


def plan_lifecycle(config: NativeConfig) -> tuple[Step, ...]:
    """Return the steps of a deployment from a running revision to a new one."""
    shifts = tuple(
        Step(
            "PRODUCTION_TRAFFIC_SHIFT",
            ("PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"),
            "shift",
            p,
            b,
        )
        for p, b in config.steps
    )
    return (
        Step("RECONCILE_SERVICE", ("RECONCILE_SERVICE",)),
        Step("PRE_SCALE_UP", ("PRE_SCALE_UP",)),
        Step("SCALE_UP", action="scale_up"),
        Step("POST_SCALE_UP", ("POST_SCALE_UP",)),
        Step("TEST_TRAFFIC_SHIFT", ("TEST_TRAFFIC_SHIFT",), "test_shift"),
        Step("POST_TEST_TRAFFIC_SHIFT", ("POST_TEST_TRAFFIC_SHIFT",)),
        *shifts,
        Step("POST_PRODUCTION_TRAFFIC_SHIFT", ("POST_PRODUCTION_TRAFFIC_SHIFT",)),
        # bakeTimeInMinutes: "both blue and green service revisions are running simultaneously after
        # the production traffic has shifted" (botocore DeploymentConfiguration.bakeTimeInMinutes)
        Step("BAKE_TIME", wait_minutes=config.bake_minutes),
        Step("CLEAN_UP", action="clean_up"),
    )


#: a service's first deployment has no running revision to shift from: it only scales up
FIRST_DEPLOYMENT = (Step("SCALE_UP", action="scale_up"),)


def hooks_at(config: NativeConfig, stages: tuple[str, ...]) -> list[Hook]:
    """Return the configured hooks that run at any of ``stages``, in configuration order."""
    return [h for h in config.hooks if any(stage in h.stages for stage in stages)]
