"""Target health as the sandbox's ALB judges it, by real HTTP checks, and shown through moto.

The scheduler registers each task's target here (target group ARN + target id -> loopback port); a
checker thread probes ``http://127.0.0.1:PORT<HealthCheckPath>``: a new target is ``initial`` until
``healthy_threshold`` checks pass in a row, ``unhealthy`` after ``unhealthy_threshold`` failures.
Deregistering a target (the scheduler does it through moto, and so does anyone calling
``DeregisterTargets``) makes it ``draining``: it gets no new requests, is no longer checked, and is
forgotten after its deregistration delay. A target already ``unhealthy`` when it is deregistered
keeps showing ``unhealthy`` while it drains. A target registered with ``probed=False`` (a virtual
task's: nothing listens on its port) is ``healthy`` at once, is never checked and is never sent
traffic; it drains like any other. moto's ``describe_target_health`` reports the state kept here,
with ELB's reason codes, and lists draining targets as AWS does. An ALB that has no healthy target
"fails open" to all of them; the sandbox does not: no healthy target means no target.

Two ways to time it:

- ``profile`` with ``target_health_as_configured`` (REALISTIC): each target group's own interval,
  timeout, thresholds, path, matcher and ``deregistration_delay.timeout_seconds`` (ELB's defaults
  when unset, see ``target_group_settings``), re-read from moto at every check and scaled by the
  profile's ``time_scale``; the first check is one interval after registration. A target of a group
  that no listener or rule forwards to is ``unused`` (``Target.NotInUse``) and is not checked.
  ELB's verdict ignores ECS's grace period, as on AWS; ``ecs_sees_unhealthy`` is what ECS acts on:
  "the Amazon ECS service scheduler ignores Elastic Load Balancing ... health checks" for the
  service's ``healthCheckGracePeriodSeconds`` after a task starts
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_definition_parameters.html).
  ELB states and reasons: "Target health status",
  https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html
- no profile, or IDEALISED: the book's fixed knobs for every group (sub-second checks); failures
  within ``grace_seconds`` of registration are not counted; the delay a group left at AWS's 300 s
  gives ``default_drain_seconds`` and every delay is capped at ``max_drain_seconds``.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from moto.elbv2.models import FakeTargetGroup

from .elb_health_report import install, uninstall
from .health_checks import Target, decide_drain_seconds, decide_due, decide_state, probe
from .realism import Realism
from .target_group_settings import (
    DELAY_ATTRIBUTE,
    CheckSettings,
    decide_settings,
    find_group,
    in_use_by_arn,
)

#: how often the checker looks for due checks when each group keeps its own interval, sandbox seconds
_CONFIGURED_POLL = 0.01


class TargetHealthBook:
    """Thread-safe store of every target's real health, and the HTTP checker that keeps it true.

    With a ``profile`` whose ``target_health_as_configured`` is set, every timing comes from the
    target groups themselves (scaled) and the fixed knobs are unused.
    """

    def __init__(
        self,
        interval_seconds: float = 0.2,
        healthy_threshold: int = 2,
        unhealthy_threshold: int = 2,
        grace_seconds: float = 1.0,
        timeout_seconds: float = 1.0,
        default_drain_seconds: float = 0.3,
        max_drain_seconds: float = 5.0,
        *,
        profile: Realism | None = None,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self.grace_seconds = grace_seconds
        self.timeout_seconds = timeout_seconds
        self.default_drain_seconds = default_drain_seconds
        self.max_drain_seconds = max_drain_seconds
        self.profile: Realism | None = None
        self.use_profile(profile)
        self._targets: dict[tuple[str, str], Target] = {}
        self._turns: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probes: ThreadPoolExecutor | None = None

    def use_profile(self, profile: Realism | None) -> None:
        """Time checks by each group's own settings when the profile says so, else by the fixed knobs.

        Targets registered before keep their grace period; the checker follows from its next look.
        """
        self.profile = profile if profile is not None and profile.target_health_as_configured else None

    @property
    def as_configured(self) -> bool:
        """Return whether each target group's own settings time the checks."""
        return self.profile is not None

    def settings_for(self, target_group_arn: str) -> CheckSettings | None:
        """Return the group's own scaled check settings (None: fixed knobs, or the group is gone)."""
        if self.profile is None:
            return None
        group = find_group(target_group_arn)
        return decide_settings(group, self.profile) if group is not None else None

    def register(
        self,
        target_group_arn: str,
        target_id: str,
        port: int,
        path: str,
        matcher: str,
        probed: bool = True,
        grace_seconds: float | None = None,
    ) -> None:
        """Start checking a target (state "initial"); ``probed=False``: healthy at once, never checked.

        ``grace_seconds``: the service's healthCheckGracePeriodSeconds (AWS seconds; used with a
        profile, scaled; None is ECS's default, 0).
        """
        target = Target(target_group_arn, target_id, port, path, matcher, probed=probed)
        if not probed:
            target.state = "healthy"
        if self.profile is not None:
            target.grace_until = target.registered_at + self.profile.scaled(grace_seconds or 0.0)
            settings = self.settings_for(target_group_arn)
            target.next_check_at = target.registered_at + (settings.interval if settings else 0.0)
        else:
            target.grace_until = target.registered_at + self.grace_seconds
        with self._lock:
            self._targets[(target_group_arn, target_id)] = target

    def drain(self, target_group_arn: str, target_id: str, seconds: float) -> None:
        """Deregister a target: no new traffic, no more checks, forgotten after ``seconds``."""
        with self._lock:
            target = self._targets.get((target_group_arn, target_id))
            if target is None or target.deregistered:
                return
            target.drain_until = time.monotonic() + seconds
            if target.state != "unhealthy":
                target.state = "draining"

    def drain_seconds_for(self, group: FakeTargetGroup) -> float:
        """Return how long a target deregistered from the group drains."""
        if self.profile is not None:
            return decide_settings(group, self.profile).drain_seconds
        attribute = (getattr(group, "attributes", None) or {}).get(DELAY_ATTRIBUTE)
        return decide_drain_seconds(attribute, self.default_drain_seconds, self.max_drain_seconds)

    def is_draining(self, target_group_arn: str, target_id: str) -> bool:
        """Return whether a deregistered target is still within its deregistration delay."""
        self.sweep()
        with self._lock:
            target = self._targets.get((target_group_arn, target_id))
            return target is not None and target.deregistered

    def ecs_sees_unhealthy(self, target_group_arn: str, target_id: str) -> bool:
        """Return whether ECS acts on the target's unhealthy verdict (ELB says so, grace period over)."""
        with self._lock:
            target = self._targets.get((target_group_arn, target_id))
            return (
                target is not None and target.state == "unhealthy" and time.monotonic() >= target.grace_until
            )

    def sweep(self) -> None:
        """Forget the targets whose deregistration delay is over."""
        now = time.monotonic()
        with self._lock:
            done = [k for k, t in self._targets.items() if t.drain_until is not None and t.drain_until <= now]
            for key in done:
                del self._targets[key]

    def remove(self, target_group_arn: str, target_id: str) -> None:
        """Forget a target."""
        with self._lock:
            self._targets.pop((target_group_arn, target_id), None)

    def clear(self) -> None:
        """Forget every target."""
        with self._lock:
            self._targets.clear()
            self._turns.clear()

    def get(self, target_group_arn: str, target_id: str) -> Target | None:
        """Return the target, if registered here."""
        with self._lock:
            return self._targets.get((target_group_arn, target_id))

    def draining_ids(self, target_group_arn: str) -> list[str]:
        """Return the ids of the group's targets that are deregistered but not yet forgotten."""
        with self._lock:
            return [
                t.target_id
                for (arn, _), t in self._targets.items()
                if arn == target_group_arn and t.deregistered
            ]

    def healthy_ports(self, target_group_arn: str) -> list[int]:
        """Return the loopback ports of the group's healthy probed targets, in registration order."""
        with self._lock:
            return [
                t.port
                for (arn, _), t in self._targets.items()
                if arn == target_group_arn and t.state == "healthy" and t.probed
            ]

    def next_port(self, target_group_arn: str) -> int | None:
        """Return the port of the group's healthy target a new request goes to (round robin), or None."""
        ports = self.healthy_ports(target_group_arn)
        if not ports:
            return None
        with self._lock:
            turn = self._turns.setdefault(target_group_arn, itertools.count())
            return ports[next(turn) % len(ports)]

    def check_once(self) -> None:
        """Probe every target that is not deregistered once and move its state by the thresholds."""
        self.sweep()
        with self._lock:
            targets = [t for t in self._targets.values() if t.probed and not t.deregistered]
        for target in targets:
            failure = probe(target.port, target.path, target.matcher, self.timeout_seconds)
            with self._lock:
                self._record(target, failure)

    def _record(self, target: Target, failure: str) -> None:
        if target.deregistered:
            return
        if failure and target.state == "initial" and time.monotonic() < target.grace_until:
            return  # the app may still be starting: ELB failures inside the grace period do not count
        decide_state(target, failure, self.healthy_threshold, self.unhealthy_threshold)

    def check_due(self) -> None:
        """Start a probe of each target whose group's interval is due; mark unused groups' targets."""
        self.sweep()
        now = time.monotonic()
        with self._lock:
            targets = [t for t in self._targets.values() if t.probed and not t.deregistered]
        in_use = in_use_by_arn({t.target_group_arn for t in targets})
        for target in targets:
            settings = self.settings_for(target.target_group_arn)
            with self._lock:
                if settings is None or target.deregistered or target.in_flight:
                    continue
                if not decide_due(target, settings.interval, in_use[target.target_group_arn], now):
                    continue
                target.in_flight = True
                target.next_check_at = max(target.next_check_at + settings.interval, now)
            if self._probes is not None:
                self._probes.submit(self._probe_configured, target, settings)

    def _probe_configured(self, target: Target, settings: CheckSettings) -> None:
        failure = probe(target.port, settings.path, settings.matcher, settings.timeout)
        allowance = self.profile.app_start_allowance_seconds if self.profile is not None else 0.0
        with self._lock:
            target.in_flight = False
            if failure and target.state == "initial" and time.monotonic() < target.registered_at + allowance:
                return  # the app is still starting, in real time (see Realism.app_start_allowance_seconds)
            if not target.deregistered and target.state != "unused":
                decide_state(target, failure, settings.healthy_threshold, settings.unhealthy_threshold)

    def start(self) -> None:
        """Start the checker thread and make moto report (and deregister) through this book."""
        install(self)
        self._stop.clear()
        # threads start on first use: a book on fixed knobs never starts one
        self._probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sandbox-probe")
        self._thread = threading.Thread(target=self._run, name="sandbox-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the checker thread and restore moto's own health reporting."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._probes is not None:
            self._probes.shutdown(wait=True, cancel_futures=True)
            self._probes = None
        uninstall(self)

    def _run(self) -> None:
        while not self._stop.wait(_CONFIGURED_POLL if self.profile is not None else self.interval_seconds):
            if self.profile is not None:
                self.check_due()
            else:
                self.check_once()
