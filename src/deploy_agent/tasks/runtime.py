"""The composition root of a worker process: settings, Redis, and the adapters, made on first use.

Nothing here runs at import time: Celery imports task modules in publishers too, which must not
open Docker or AWS connections.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deploy_agent.adapters.agenda import Agenda, LeaseKeeper
from deploy_agent.adapters.aws import AwsClients
from deploy_agent.adapters.cloudwatch import CloudWatchApi
from deploy_agent.adapters.docker_builder import DockerBuilder
from deploy_agent.adapters.ecr import EcrRegistry
from deploy_agent.adapters.ecs import EcsApi
from deploy_agent.adapters.elb import ElbApi
from deploy_agent.adapters.health import HttpProber
from deploy_agent.adapters.logs import LogsApi
from deploy_agent.adapters.outbound import Outbound
from deploy_agent.adapters.prometheus import PrometheusApi
from deploy_agent.adapters.redis_client import Redis, redis_client
from deploy_agent.adapters.redis_locks import ServiceLock
from deploy_agent.adapters.redis_store import DeploymentStore
from deploy_agent.adapters.service_reader import BATCH, BatchedServiceReader
from deploy_agent.adapters.traffic_probe import TrafficProbe
from deploy_agent.adapters.traffic_watch import TrafficWatch
from deploy_agent.adapters.webhook import WebhookSender
from deploy_agent.core.state import utcnow
from deploy_agent.models.policy import Policy, load_policy
from deploy_agent.settings import Settings
from deploy_agent.tasks import metrics


@dataclass
class Runtime:
    """Everything a stage needs, per worker process."""

    settings: Settings
    redis: Redis
    now: Callable[[], datetime] = utcnow
    _aws: dict[str, AwsClients] = field(default_factory=dict)
    _docker: DockerBuilder | None = None
    _prober: HttpProber | None = None
    _traffic_watch: TrafficWatch | None = None
    _webhooks: WebhookSender | None = None
    _outbound: Outbound | None = None
    #: how events reach webhooks: None means through the ``deploy_agent.notify`` task
    notifier: Callable[[Iterable[str], Mapping[str, Any]], None] | None = None

    _policy: Policy | None = None
    _agenda: Agenda | None = None
    _lease_keeper: LeaseKeeper | None = None
    _policy_loaded: bool = False
    #: held while a lazily made part is made: the main process's threads (dispatcher, cluster watcher,
    #: event consumer, HTTP server) share this runtime, and two made at once would be two lease
    #: keepers, two sets of boto3 clients, two Docker clients
    _making: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def policy(self) -> Policy | None:
        """The operator's policy (``settings.policy``), read once per process; None when unset."""
        if not self._policy_loaded:
            self._policy = load_policy(self.settings.policy) if self.settings.policy else None
            self._policy_loaded = True
        return self._policy

    @property
    def outbound(self) -> Outbound:
        """Where URLs a message names may go: the policy's ``outbound`` rules (no policy: anything
        but link-local); the worker's own webhook URLs are the operator's and are not held to them."""
        if self._outbound is None:
            policy = self.policy
            self._outbound = Outbound(
                policy.outbound if policy is not None else None, trusted_urls=self.settings.webhook_urls
            )
        return self._outbound

    @property
    def prober(self) -> HttpProber:
        if self._prober is None:
            self._prober = HttpProber(self.outbound)
        return self._prober

    @property
    def prometheus(self) -> PrometheusApi:
        """The analysis gates' Prometheus client, under the same outbound rules as the health probes."""
        return PrometheusApi(self.outbound)

    @staticmethod
    def count_verdict(kind: str, result: str) -> None:
        """Count one gate verdict in ``deploy_agent_gate_verdicts_total``."""
        metrics.GATE_VERDICTS.labels(kind, result).inc()

    @property
    def webhooks(self) -> WebhookSender:
        if self._webhooks is None:
            self._webhooks = WebhookSender(self.outbound)
        return self._webhooks

    @property
    def agenda(self) -> Agenda:
        """When each deployment's current stage runs next (``adapters.agenda``)."""
        if self._agenda is None:
            self._agenda = Agenda(self.redis, self.settings.lease_seconds)
        return self._agenda

    @property
    def lease_keeper(self) -> LeaseKeeper:
        """This process's lease keeper (one thread, started with the first stage run it holds)."""
        with self._making:
            if self._lease_keeper is None:
                lease_ms = self.agenda.lease_ms

                def extend(keys: list[str]) -> None:
                    with self.redis.pipeline(transaction=False) as pipe:
                        for key in keys:
                            pipe.pexpire(key, lease_ms)
                        pipe.execute()

                self._lease_keeper = LeaseKeeper(self.agenda, extend)
            return self._lease_keeper

    @property
    def store(self) -> DeploymentStore:
        return DeploymentStore(self.redis, self.settings.result_ttl_seconds, self.settings.event_history)

    def lock(self, cluster: str, service: str, region: str) -> ServiceLock:
        return ServiceLock(self.redis, cluster, service, self.settings.lock_ttl_seconds, region)

    def aws(self, region: str) -> AwsClients:
        clients = self._aws.get(region)
        if clients is not None:
            return clients
        with self._making:
            return self._make_aws(region)

    def _make_aws(self, region: str) -> AwsClients:
        if region not in self._aws:
            from deploy_agent.adapters.rate_limit import RedisRateLimiter
            from deploy_agent.core.quotas import parse_overrides

            settings = self.settings
            # The fleet's quotas live in the state Redis, which every worker of the fleet shares.
            limiter = (
                RedisRateLimiter(
                    self.redis,
                    parse_overrides(settings.aws_quotas),
                    settings.aws_quota_share,
                    on_wait=lambda service, operation, seconds: metrics.AWS_RATE_LIMIT_WAIT.labels(
                        service, operation
                    ).observe(seconds),
                )
                if settings.aws_rate_limit
                else None
            )
            self._aws[region] = AwsClients(
                region,
                max_attempts=settings.aws_max_attempts,
                retry_mode=settings.aws_retry_mode,
                on_throttle=lambda service, operation: metrics.AWS_THROTTLES.labels(service, operation).inc(),
                rate_limiter=limiter,
                account_label=settings.aws_account_label,
            )
        return self._aws[region]

    def ecs(self, region: str) -> EcsApi:
        return EcsApi(self.aws(region))

    def services(self, region: str) -> BatchedServiceReader:
        """ECS as the strategies see it: batched, briefly cached DescribeServices."""
        settings = self.settings
        woken = bool(settings.events_queue_url) or settings.watch_interval_seconds > 0
        others = 0 if woken else BATCH - 1  # stages that poll by themselves share their looks
        return BatchedServiceReader(self.ecs(region), self.redis, region, settings.poll_fast_seconds, others)

    def ecr(self, region: str) -> EcrRegistry:
        return EcrRegistry(self.aws(region))

    def elb(self, region: str) -> ElbApi:
        return ElbApi(self.aws(region))

    def logs(self, region: str) -> LogsApi:
        return LogsApi(self.aws(region))

    def alarms(self, region: str) -> CloudWatchApi:
        return CloudWatchApi(self.aws(region))

    @property
    def traffic_watch(self) -> TrafficWatch:
        """This process's zero-downtime watches (one per process: it holds their probe threads)."""
        with self._making:
            if self._traffic_watch is None:
                self._traffic_watch = TrafficWatch(
                    self.redis,
                    self.traffic_probe,
                    on_report=lambda report: metrics.ZERO_DOWNTIME.labels(
                        "failed" if report.failures else "ok"
                    ).inc(),
                )
        return self._traffic_watch

    def traffic_probe(self, url: str) -> TrafficProbe:
        return TrafficProbe(
            url, rate_per_second=self.settings.zero_downtime_rate_per_second, outbound=self.outbound
        )

    @property
    def docker(self) -> DockerBuilder:
        with self._making:
            if self._docker is None:
                self._docker = DockerBuilder.connect(network=self.settings.build_network)
        return self._docker


_runtime: Runtime | None = None
_runtime_pid: int | None = None


def get_runtime() -> Runtime:
    """Return this process's runtime, building it on first use (and again after a fork)."""
    global _runtime, _runtime_pid
    if _runtime is None or _runtime_pid != os.getpid():
        settings = Settings()
        state_redis = redis_client(
            settings.state_redis_url,
            settings.redis_ssl_ca_certs,
            sentinel_master=settings.redis_sentinel_master,
            sentinel_password=settings.redis_sentinel_password,
        )
        _runtime = Runtime(settings=settings, redis=state_redis)
        _runtime_pid = os.getpid()
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests and the in-process ``run`` command use this)."""
    global _runtime, _runtime_pid
    _runtime, _runtime_pid = runtime, os.getpid()
