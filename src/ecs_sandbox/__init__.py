"""The local sandbox: an emulated AWS that tests and the demo share (DESIGN.md section 6).

One process runs:

- moto in server mode (``moto_server``): every AWS API the worker calls, over real HTTP;
- an ECS service scheduler (``scheduler``, ``rollout``, ``task_runner``) that mutates moto's backends:
  deployments (PRIMARY/ACTIVE, rolloutState, counts, failedTasks), rolling replacement within
  maximumPercent/minimumHealthyPercent, desired-count changes, the deployment circuit breaker with
  rollback, stopped-task reasons/stop codes/exit codes, service events, StopTask, deleted services;
  at the pace of a realism profile (``realism``: ``Sandbox.start(profile=, time_scale=)``, REALISTIC
  by default): tasks PROVISIONING then PENDING for Fargate's seconds (scaled); the circuit
  breaker's rollback a deployment of its own while the failed one stays listed ACTIVE/IN_PROGRESS
  until replaced, then FAILED; ``failedTasks`` reset by a healthy task (``resetOnHealthyTask``);
  ECS's growing relaunch back-off for tasks that keep failing; an ``awslogs`` log group that does
  not exist stops the task with ResourceInitializationError unless ``awslogs-create-group`` is
  "true" (``log_groups``); the IDEALISED profile keeps the fast, simple ECS of earlier versions;
- each task as real containers (``containers``): the image's ECR host is mapped to the local
  registry and pulled; host network; ``PORT`` = a free loopback port; environment and Secrets
  Manager / SSM secrets injected; every *essential* container runs, non-essential ones are recorded
  in the task but not run;
- target health (``target_health``): HTTP checks of ``HealthCheckPath`` against each task's port,
  shown by ``describe_target_health`` (initial/healthy/unhealthy/draining, ELB reason codes); a
  deregistered target drains for the target group's deregistration delay (capped by the
  ``max_drain_seconds`` knob) before its task's containers stop; without a load balancer, a
  container ``healthCheck`` becomes a Docker healthcheck, and no check at all means RUNNING = healthy;
- a load balancer (``load_balancer``, ``listener_rules``): one loopback HTTP proxy per ELBv2 listener
  (any listener, any time), honouring listener rules in priority order and weighted forward actions,
  sending only to healthy, non-draining targets; ``X-Sandbox-Target`` names the target that answered;
- DeleteService as ECS does it: DRAINING while the tasks deregister, drain and stop, then INACTIVE;
- a registry (``registry``): ``docker-registry`` standing in for ECR's registry host;
- knobs for benchmarks (``EcsScheduler`` keywords, through ``Sandbox.start(**knobs)``; an explicit
  knob wins over the profile): ``task_start_delay_seconds`` (a new task is RUNNING no sooner; it
  replaces the profile's PROVISIONING + PENDING seconds), ``virtual_tasks`` (tasks run no
  container: RUNNING after the delay, healthy at once, registered as healthy targets the load
  balancer never sends to; hundreds of services on one host), and ``scheduler.rollout_log()``: when
  each deployment was created (IN_PROGRESS) and reached COMPLETED or FAILED, by the wall clock;
- ECS's native BLUE_GREEN / LINEAR / CANARY controller (``native_controller`` and its ``native_*``
  modules), for services whose deploymentConfiguration.strategy asks for it: ServiceDeployments and
  ServiceRevisions (ListServiceDeployments, DescribeServiceDeployments, DescribeServiceRevisions),
  lifecycle stages from RECONCILE_SERVICE to CLEAN_UP, the new revision at full size in the
  alternate target group, the test and production listener rules' weights shifted (all at once, per
  linear step, canary then the rest), bake time, PAUSE hooks (ContinueServiceDeployment, timeouts),
  StopServiceDeployment (ROLLBACK, ABORT), rollback by the circuit breaker and CloudWatch alarms; the
  configurations ECS refuses are refused while the AWS rules are on; AWS_LAMBDA hooks are accepted
  and count as SUCCEEDED (no Lambda runs);
- set-ups (``provision``, ``blue_green``, ``native_setup``): a running service behind an ALB,
  optionally with a green target group and a test listener for blue-green and canary deployments,
  or set up for ECS's native strategies (``provision_native``).

Emulated loosely: the sandbox's own health timing (interval, thresholds, grace) replaces the
target group's and container's seconds; an ALB's fail-open (no healthy target -> try them all) is a
503 here; the circuit breaker counts every failed task of the PRIMARY (no separate stage for tasks
that never reached RUNNING, no ``thresholdConfiguration``) and its back-off is per service, reset by
a healthy task or a new deployment; the failed deployment's end (FAILED once none of its tasks is
left and the rollback runs its desired count) follows one field timeline, not an AWS document; log
events are not stored (only the log group is checked); a rolling deployment's alarms, task
placement, CPU/memory limits, capacity providers, task sets, CodeDeploy and non-ECS deployment
controllers are not emulated.

moto's own code is changed in one module, ``moto_patches`` (its docstring lists each change and
why; ``MotoServer.start`` applies them): UpdateService answers with the new PRIMARY deployment and
an ARN task definition; ListTasks honours serviceName (and then lists RUNNING-desired tasks by
default); awsvpc tasks start without EnableDnsHostnames; DescribeTargetHealth lists draining
targets; the AWS rules above; the service-deployment operations moto lacks.

This package imports nothing of deploy_agent, and deploy_agent imports nothing of it (but for the
lazy ``deploy-agent sandbox`` command): the worker reaches the sandbox through AWS_ENDPOINT_URL and
the registry host only. ``sandbox_harness`` starts workers against it. Neither ships in the
deploy-agent wheel; both come with the source checkout.
"""

from .blue_green import BlueGreenSetup, provision_blue_green, provision_green_service
from .environment import Sandbox
from .load_balancer import LocalLoadBalancer
from .moto_server import MotoServer
from .native_setup import NativeSetup, provision_native
from .provision import ProvisionedService, provision_service, wait_for_rollout
from .registry import LocalRegistry
from .scheduler import EcsScheduler

__all__ = [
    "BlueGreenSetup",
    "EcsScheduler",
    "LocalLoadBalancer",
    "LocalRegistry",
    "MotoServer",
    "NativeSetup",
    "ProvisionedService",
    "Sandbox",
    "provision_blue_green",
    "provision_green_service",
    "provision_native",
    "provision_service",
    "wait_for_rollout",
]
