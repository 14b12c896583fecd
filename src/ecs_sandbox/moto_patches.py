"""Every change the sandbox makes to moto's own code, in one place; ``apply()`` makes them, once.

moto 5.2 leaves out some of what AWS does. The sandbox replaces the moto methods listed here, from
this module only, when its moto server starts (``MotoServer.start`` calls ``apply()``; a second call
changes nothing). Each replacement calls moto's original and adds nothing until the sandbox asks:
the ECS scheduler and the target health book register ``hooks``, and the AWS rules run only while
``aws_rules`` is switched on (realism profile ``enforce_aws_rules``). Patches 1, 4, 14 and 15 fix moto
bugs and patch 16 cuts moto's costs, always on; patch 8 adds operations moto does not have.

ECS (``moto.ecs``):

1. ``NetworkInterface.private_dns_name`` gets a class default of None. moto bug B1: an awsvpc task
   reads the ENI's ``private_dns_name``, which moto sets only in a VPC with DNS hostnames enabled;
   ECS starts awsvpc tasks in any VPC.
2. ``EC2ContainerServiceBackend.update_service``, then ``hooks.service_updated``: ECS answers
   UpdateService with the new PRIMARY deployment, true counts and the task definition as an ARN
   (UpdateService API reference, Response Syntax); moto echoes what it was given.
3. ``EC2ContainerServiceBackend.delete_service``, then ``hooks.service_deleted``: a service with tasks
   left is DRAINING until they have stopped, then INACTIVE (DeleteService API reference); moto makes
   it INACTIVE at once.
4. ``EC2ContainerServiceBackend.list_tasks`` honours ``serviceName`` and then lists RUNNING-desired
   tasks by default (ListTasks API reference, ``desiredStatus``); moto ignores ``serviceName``.
15. ``EC2ContainerServiceBackend.list_services`` lists the cluster's own services only (ListServices
   API reference: "Returns a list of services ... in a specified cluster"); moto matches the key
   "<cluster>:<service>" on the substring "<cluster>:", so cluster ``c`` also listed ``sec``'s.
5. ``EC2ContainerServiceResponse.create_service`` (rules on): a target group no load balancer forwards
   to is refused, and the members moto drops are kept (CreateService API reference;
   hashicorp/terraform#32908; ``aws_rules``).
6. ``EC2ContainerServiceResponse.update_service`` (rules on): what a CODE_DEPLOY or EXTERNAL service
   may not change is refused (botocore's UpdateService doc; ``aws_rules.update_refusal``).
7. ``EC2ContainerServiceResponse.create_service`` and ``update_service`` (rules on): a native
   BLUE_GREEN / LINEAR / CANARY configuration ECS refuses is refused (``native_api.check_create`` /
   ``check_update``: ranges, PAUSE hooks at barred stages, advancedConfiguration and its listener rules).
8. ``EC2ContainerServiceResponse.list_service_deployments``, ``describe_service_deployments``,
   ``describe_service_revisions``, ``continue_service_deployment``, ``stop_service_deployment``
   (new; moto has none of them): answered by ``native_api.answer`` from the controller the scheduler
   registers in ``hooks.native_controllers`` (UnsupportedFeatureException while none is).

ELBv2 (``moto.elbv2``):

9. ``FakeAction.__init__`` (rules on): an authenticate-oidc action keeps its ClientSecret beside the
   config, so no Describe* returns it, and shows the documented defaults (AuthenticateOidcActionConfig).
10. ``ELBv2Backend.create_listener``, ``modify_listener``, ``create_rule``, ``modify_rule`` (rules on):
   authenticate-oidc needs a ClientSecret unless a modify says UseExistingClientSecret, which keeps
   the secret it had (AuthenticateOidcActionConfig).
11. ``FakeTargetGroup.health_for`` reports each ``HealthSource``'s state, reason and description
   ("Target health status", ALB guide, target-group-health-checks.html); moto calls every registered
   target healthy.
12. ``FakeTargetGroup.deregister`` tells each ``HealthSource``, which starts the deregistration delay
    ("Deregistration delay", same guide); moto forgets the target at once.
13. ``ELBv2Backend.describe_target_health`` (with a ``HealthSource``) lists draining targets with the
    registered ones and leaves out drained ones, as AWS does.

EventBridge (``moto.events``):

14. ``Rule.send_to_targets`` delivers nothing while the rule is DISABLED ("a disabled rule doesn't
    match any events", EventBridge API reference, DisableRule); moto delivers through disabled rules.

SQS and EventBridge costs (``moto_speed``, always on):

16. ``Queue.messages``, ``Queue.approximate_number_of_messages*``,
    ``SQSBackend.is_message_valid_based_on_retention_period`` and jsonpath_ng's ``ext.parse`` answer
    as moto's do at a cost that no longer grows with the queue's depth (moto's ReceiveMessage of 10
    took 3.5 s with 3,000 messages queued, so a fleet's ECS events swamped the sandbox).

Not patches, so they live elsewhere: ``moto_server`` subclasses moto's ``ThreadedMotoServer`` (its
WSGI app counts, fails and delays calls before moto sees them) and pins ECS task transitions with
moto's own ``state_manager`` API; ``consistency`` answers at the server's door; the scheduler,
``tasks``, ``deployments`` and ``registry_proxy`` read and write moto's objects, not its code.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from moto.ec2.models import elastic_network_interfaces
from moto.ecs.models import EC2ContainerServiceBackend
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.elbv2.models import ELBv2Backend, FakeAction, FakeHealthStatus, FakeTargetGroup
from moto.events.models import Rule as EventRule

from . import aws_rules, moto_speed

if TYPE_CHECKING:  # native_api reaches the scheduler's modules, which import this one: imported late
    from .native_controller import NativeController

#: called with (moto's ECS backend, the moto Service) after moto's own update or delete
ServiceHook = Callable[[Any, Any], None]
T = TypeVar("T")


class HealthSource(Protocol):
    """What moto's ELBv2 asks about target health (the sandbox's ``TargetHealthBook`` answers)."""

    def report(self, group: FakeTargetGroup, target: dict[str, Any], status: FakeHealthStatus) -> None:
        """Overwrite moto's ``status`` of ``target`` where the source knows better."""

    def deregistered(self, group: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
        """Note that ``targets`` left ``group`` (their deregistration delay starts)."""

    def draining_ids(self, group_arn: str) -> Iterable[str]:
        """Return the ids of the group's targets that are draining."""


@dataclass
class Hooks:
    """What the replacements call besides moto's original; while empty, moto answers as moto does."""

    service_updated: list[ServiceHook] = field(default_factory=list)
    service_deleted: list[ServiceHook] = field(default_factory=list)
    health_sources: list[HealthSource] = field(default_factory=list)
    #: the native deployment controller that answers the service-deployment APIs (patch 8)
    native_controllers: list[NativeController] = field(default_factory=list)


hooks = Hooks()


def register(into: list[T], item: T) -> None:
    """Add ``item`` to one of the ``hooks`` lists (once)."""
    if item not in into:
        into.append(item)


def unregister(into: list[T], item: T) -> None:
    """Remove ``item`` from one of the ``hooks`` lists (a no-op when absent)."""
    if item in into:
        into.remove(item)


# moto's originals, taken before anything is replaced.
_ECS_UPDATE = EC2ContainerServiceBackend.update_service
_ECS_DELETE = EC2ContainerServiceBackend.delete_service
_ECS_LIST_TASKS = EC2ContainerServiceBackend.list_tasks
_ECS_LIST_SERVICES = EC2ContainerServiceBackend.list_services
_ECS_CREATE_RESPONSE = EC2ContainerServiceResponse.create_service
_ECS_UPDATE_RESPONSE = EC2ContainerServiceResponse.update_service
_ACTION_INIT = FakeAction.__init__
_ELB_WRITERS = {name: getattr(ELBv2Backend, name) for name in aws_rules.OIDC_WRITERS}
_HEALTH_FOR = FakeTargetGroup.health_for
_DEREGISTER = FakeTargetGroup.deregister
_DESCRIBE_HEALTH = ELBv2Backend.describe_target_health
_SEND_TO_TARGETS = EventRule.send_to_targets
_LIST_TASKS_ARGS = (
    "cluster_str",
    "container_instance",
    "family",
    "started_by",
    "service_name",
    "desiredStatus",
)


# --- ECS ----------------------------------------------------------------------------------------------


def _update_service(self: EC2ContainerServiceBackend, service_properties: dict[str, Any]) -> Any:
    service = _ECS_UPDATE(self, service_properties)
    for hook in tuple(hooks.service_updated):
        hook(self, service)
    return service


def _delete_service(
    self: EC2ContainerServiceBackend, cluster_name: str, service_name: str, force: bool
) -> Any:
    service = _ECS_DELETE(self, cluster_name, service_name, force)
    for hook in tuple(hooks.service_deleted):
        hook(self, service)
    return service


def _list_tasks(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> list[Any]:
    params = {**dict(zip(_LIST_TASKS_ARGS, args, strict=False)), **kwargs}
    service_name = params.pop("service_name", None)
    tasks: list[Any] = _ECS_LIST_TASKS(self, **params)
    if not service_name:
        return tasks
    group = f"service:{str(service_name).split('/')[-1]}"
    wanted = params.get("desiredStatus") or "RUNNING"
    return [t for t in tasks if t.group == group and t.desired_status == wanted]


def _create_service_response(self: EC2ContainerServiceResponse) -> Any:
    if not aws_rules.installed():
        return _ECS_CREATE_RESPONSE(self)
    params: dict[str, Any] = self._get_params()
    aws_rules.check_create_service(self.current_account, self.region, params)
    from . import native_api

    native_api.check_create(self.current_account, self.region, params)
    result = _ECS_CREATE_RESPONSE(self)
    service = self.ecs_backend._get_service(params.get("cluster", "default"), params["serviceName"])
    aws_rules.keep_dropped_members(service, params)
    return result


def _update_service_response(self: EC2ContainerServiceResponse) -> Any:
    if aws_rules.installed():
        params: dict[str, Any] = self._get_params()
        service = self.ecs_backend._get_service(params.get("cluster", "default"), params["service"])
        aws_rules.check_update_service(service, params)
        from . import native_api

        native_api.check_update(self.current_account, self.region, service, params)
    return _ECS_UPDATE_RESPONSE(self)


def _native_operation(name: str) -> Callable[[EC2ContainerServiceResponse], Any]:
    def operation(self: EC2ContainerServiceResponse) -> Any:
        from . import native_api

        return native_api.answer(name, self, tuple(hooks.native_controllers))

    operation.__name__ = name
    return operation


# --- ELBv2 --------------------------------------------------------------------------------------------


def _action_init(self: FakeAction, data: dict[str, Any]) -> None:
    _ACTION_INIT(self, data)
    if aws_rules.installed():
        aws_rules.hide_oidc_secret(self, data)


def _elb_writer(name: str) -> Callable[..., Any]:
    original = _ELB_WRITERS[name]
    signature = inspect.signature(original)

    def write(self: ELBv2Backend, *args: Any, **kwargs: Any) -> Any:
        if not aws_rules.installed():
            return original(self, *args, **kwargs)
        arguments = signature.bind(self, *args, **kwargs).arguments
        previous = aws_rules.check_oidc_write(self, name, arguments)
        written = original(self, *args, **kwargs)
        aws_rules.keep_oidc_secret(written, name, previous)
        return written

    return write


def _health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
    status: FakeHealthStatus = _HEALTH_FOR(self, target, ec2_backend)
    for source in tuple(hooks.health_sources):
        source.report(self, target, status)
    return status


def _deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    _DEREGISTER(self, targets)
    for source in tuple(hooks.health_sources):
        source.deregistered(self, targets)


def _describe_target_health(
    self: ELBv2Backend, target_group_arn: str, targets: list[dict[str, Any]]
) -> list[FakeHealthStatus]:
    statuses: list[FakeHealthStatus] = _DESCRIBE_HEALTH(self, target_group_arn, targets)
    sources = tuple(hooks.health_sources)
    group = self.target_groups.get(target_group_arn)
    if not sources or targets or group is None:
        return statuses
    # AWS lists draining targets with the registered ones; moto forgets them on deregistration.
    for source in sources:
        for target_id in source.draining_ids(target_group_arn):
            target = group.deregistered_targets.get(target_id)
            if target is not None and target_id not in group.targets:
                statuses.append(group.health_for(target, self.ec2_backend))
    # A target drained and forgotten is not listed (moto's "unused / Target.NotRegistered").
    return [s for s in statuses if s.reason != "Target.NotRegistered"]


# --- EventBridge --------------------------------------------------------------------------------------


def _send_to_targets(self: EventRule, *args: Any, **kwargs: Any) -> None:
    if self.state != "ENABLED":
        return
    _SEND_TO_TARGETS(self, *args, **kwargs)


# --- apply --------------------------------------------------------------------------------------------

_applied = False


def _list_services(
    self: EC2ContainerServiceBackend, cluster_str: str, *args: Any, **kwargs: Any
) -> list[str]:
    listed: list[str] = _ECS_LIST_SERVICES(self, cluster_str, *args, **kwargs)
    cluster = self._get_cluster(cluster_str)
    own = {service.arn for key, service in self.services.items() if key.split(":", 1)[0] == cluster.name}
    return [arn for arn in listed if arn in own]


def apply() -> None:
    """Replace the moto methods listed in the module docstring (idempotent)."""
    global _applied
    if _applied:
        return
    network_interface: Any = elastic_network_interfaces.NetworkInterface
    if not hasattr(network_interface, "private_dns_name"):
        network_interface.private_dns_name = None
    EC2ContainerServiceBackend.update_service = _update_service  # type: ignore[method-assign]
    EC2ContainerServiceBackend.delete_service = _delete_service  # type: ignore[method-assign]
    EC2ContainerServiceBackend.list_tasks = _list_tasks  # type: ignore[method-assign]
    EC2ContainerServiceBackend.list_services = _list_services  # type: ignore[method-assign]
    EC2ContainerServiceResponse.create_service = _create_service_response  # type: ignore[method-assign]
    EC2ContainerServiceResponse.update_service = _update_service_response  # type: ignore[method-assign]
    from . import native_api

    for name in native_api.OPERATIONS:
        setattr(EC2ContainerServiceResponse, name, _native_operation(name))
    FakeAction.__init__ = _action_init  # type: ignore[method-assign]
    for name in _ELB_WRITERS:
        setattr(ELBv2Backend, name, _elb_writer(name))
    FakeTargetGroup.health_for = _health_for  # type: ignore[method-assign]
    FakeTargetGroup.deregister = _deregister  # type: ignore[method-assign]
    ELBv2Backend.describe_target_health = _describe_target_health  # type: ignore[method-assign]
    EventRule.send_to_targets = _send_to_targets  # type: ignore[method-assign]
    moto_speed.apply()
    _applied = True
