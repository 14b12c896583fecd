"""How closely the sandbox plays real AWS, and how fast: one profile, one time-scale knob.

Every duration in a profile is in *AWS seconds* (what the real service takes, from AWS's
documentation or field reports cited next to the field); ``scaled()`` turns it into sandbox seconds.
With ``time_scale=0.02`` a 10-minute AWS timeline runs in 12 s.

Two profiles ship:

- ``REALISTIC`` (the default for the demo and the integration tests): ECS's circuit-breaker
  rollback takes as long as a deployment, ``failedTasks`` resets once a task runs, failed launches
  back off, DescribeServices is eventually consistent after Create/UpdateService, target health
  follows each target group's own interval and thresholds, and the AWS rules moto skips are enforced
  (a target group with no load balancer, a missing awslogs log group, IMMUTABLE ECR tags, other
  deployment controllers, OIDC client secrets). API quotas are opt-in (``quotas=True``).
- ``IDEALISED``: the fast, simple ECS of earlier versions (fixed sub-second health checks, one-tick
  rollback, consistent reads). A test that needs it says why.

Each area's fields are read by one module: the ECS timeline by ``rollout``/``task_runner``, the
consistency window by ``consistency``, target health by ``target_health``, rules and quotas by
``aws_rules``/``faults``/``registry_proxy``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Realism:
    """One sandbox profile: what is emulated, with durations in AWS seconds."""

    name: str = "realistic"
    #: sandbox seconds per AWS second (0.02: a 10-minute AWS timeline runs in 12 s)
    time_scale: float = 0.02
    #: the scheduler's tick, in sandbox seconds (not scaled: it is the emulator's own resolution)
    tick_seconds: float = 0.05

    # --- the ECS timeline (rollout, task_runner) ---------------------------------------------------
    #: Fargate task start: PROVISIONING (ENI attach) then PENDING (image pull), AWS seconds
    task_provisioning_seconds: float = 20.0
    task_pending_seconds: float = 10.0
    #: the circuit breaker's rollback is a deployment of its own; the failed one stays listed
    #: (ACTIVE, IN_PROGRESS) until its tasks are gone, then ends FAILED
    slow_circuit_breaker_rollback: bool = True
    #: failedTasks resets to 0 once a task of the deployment reaches RUNNING (botocore Deployment doc)
    failed_tasks_reset: bool = True
    #: ECS throttles relaunching tasks that keep failing: first delays, AWS seconds, growing
    relaunch_backoff_seconds: tuple[float, ...] = (0.0, 10.0, 30.0, 60.0, 120.0, 300.0)

    # --- eventual consistency (consistency) --------------------------------------------------------
    #: for this long after CreateService/UpdateService, DescribeServices may answer MISSING (a new
    #: service) or the state before the call; AWS seconds (0 disables)
    consistency_window_seconds: float = 5.0
    #: chance that one DescribeServices inside the window answers stale
    consistency_stale_probability: float = 0.5

    # --- target health (target_health) -------------------------------------------------------------
    #: use each target group's HealthCheckIntervalSeconds, thresholds and deregistration delay, and
    #: each service's healthCheckGracePeriodSeconds (AWS defaults when unset: 30 s, 5, 2, 300 s)
    target_health_as_configured: bool = True
    #: sandbox seconds (NOT scaled) in which a new target's failed checks do not count yet: the app in
    #: the container starts in real time, and a scaled unhealthy window (2 x 10 s x 0.01 = 0.2 s) is
    #: shorter than a host running a hundred task containers takes to start a process that AWS would
    #: give 20 s; passing checks count at once, so a healthy app is not slowed down by it
    app_start_allowance_seconds: float = 8.0

    # --- AWS's rules that moto skips (aws_rules, registry_proxy) ----------------------------------
    enforce_aws_rules: bool = True
    #: token buckets per account and region with ECS's and ELB's published rates (opt-in)
    quotas: bool = False

    def scaled(self, aws_seconds: float) -> float:
        """Return sandbox seconds for ``aws_seconds`` of AWS time."""
        return aws_seconds * self.time_scale

    def with_scale(self, time_scale: float) -> Realism:
        """Return this profile at another time scale."""
        return replace(self, time_scale=time_scale)


REALISTIC = Realism()

IDEALISED = Realism(
    name="idealised",
    time_scale=1.0,
    task_provisioning_seconds=0.0,
    task_pending_seconds=0.0,
    slow_circuit_breaker_rollback=False,
    failed_tasks_reset=False,
    relaunch_backoff_seconds=(0.0,),
    consistency_window_seconds=0.0,
    consistency_stale_probability=0.0,
    target_health_as_configured=False,
    enforce_aws_rules=False,
    quotas=False,
)

PROFILES = {"realistic": REALISTIC, "idealised": IDEALISED}


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--profile`` and ``--time-scale`` (the sandbox's, the demo's and the benchmarks')."""
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="realistic",
        help="how closely to play AWS: realistic (ECS's own timelines) or idealised (fast, simple)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="sandbox seconds per AWS second (default: the profile's; 0.02 runs 10 AWS minutes in 12 s)",
    )


def profile_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``Sandbox.start`` keywords (``profile``, ``time_scale``) the arguments chose."""
    return {"profile": PROFILES[args.profile], "time_scale": args.time_scale}


def describe_profile(args: argparse.Namespace) -> str:
    """Return one line naming the chosen profile and its time scale."""
    scale = args.time_scale if args.time_scale is not None else PROFILES[args.profile].time_scale
    return f"sandbox profile: {args.profile}, time scale {scale:g} (AWS seconds x scale)"
