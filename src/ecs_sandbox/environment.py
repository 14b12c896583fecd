"""The whole sandbox in one object: moto server + registry + ECS scheduler + load balancer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import docker

from . import aws_rules
from .load_balancer import LocalLoadBalancer
from .moto_server import MotoServer
from .realism import REALISTIC, Realism
from .registry import LocalRegistry
from .scheduler import EcsScheduler

ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass
class Sandbox:
    """A running local AWS: use ``aws_endpoint_url`` with boto3 and push images to ``registry_host``."""

    state_dir: Path
    moto: MotoServer
    registry: LocalRegistry
    scheduler: EcsScheduler
    load_balancer: LocalLoadBalancer
    region: str = REGION

    @property
    def aws_endpoint_url(self) -> str:
        """Return the moto endpoint (``http://127.0.0.1:PORT``), for ``AWS_ENDPOINT_URL``."""
        return self.moto.endpoint_url

    @property
    def registry_host(self) -> str:
        """Return the registry's ``127.0.0.1:PORT`` that stands in for ECR's registry host."""
        return self.registry.host

    @classmethod
    def start(
        cls,
        state_dir: Path,
        moto_port: int = 0,
        registry_port: int = 5000,
        docker_client: docker.DockerClient | None = None,
        regions: tuple[str, ...] = (REGION,),
        profile: Realism = REALISTIC,
        time_scale: float | None = None,
        **scheduler_knobs: Any,
    ) -> Sandbox:
        """Start every part and return the sandbox.

        ``profile`` says how closely the sandbox plays AWS (``time_scale`` overrides its time scale);
        ``scheduler_knobs`` go to EcsScheduler and win over the profile.
        """
        state_dir.mkdir(parents=True, exist_ok=True)
        client = docker_client or docker.from_env()
        client.ping()  # fail now, and loudly, when there is no engine
        realism = profile if time_scale is None else profile.with_scale(time_scale)
        moto = MotoServer(moto_port, profile=realism)
        moto.start()
        moto.faults.apply_profile(realism)  # API quotas, when the profile opts in
        aws_rules.install(realism)  # the AWS rules moto skips, when the profile enforces them
        registry = LocalRegistry(
            registry_port, state_dir / "registry", realism=realism, account=ACCOUNT, region=regions[0]
        ).start()
        scheduler = EcsScheduler(
            client, registry.host, ACCOUNT, regions, profile=profile, time_scale=time_scale, **scheduler_knobs
        ).start()
        balancer = LocalLoadBalancer(scheduler.health, ACCOUNT, regions).start()
        return cls(state_dir, moto, registry, scheduler, balancer, regions[0])

    def client(self, service: str, region: str | None = None) -> Any:
        """Return a boto3 client for the sandbox (fake credentials, one attempt per call)."""
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.aws_endpoint_url,
            region_name=region or self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
            config=_one_attempt(),
        )

    def environment(self) -> dict[str, str]:
        """Return the environment variables a worker process needs to use this sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_MAX_ATTEMPTS": "1",
        }

    def reset(self) -> None:
        """Wipe moto, stop every task container and close every listener proxy."""
        with self.scheduler.paused():
            self.scheduler.forget_all()
            self.moto.reset()
        self.load_balancer.close_all()
        self.moto.reset_api_calls()

    def stop(self) -> None:
        """Stop everything the sandbox started and remove its containers."""
        self.load_balancer.stop()
        self.scheduler.stop()
        self.registry.stop()
        self.moto.stop()
        aws_rules.uninstall()

    def use_profile(self, profile: Realism) -> None:
        """Play ``profile`` from now on: ECS timeline, target health, consistency, rules and quotas.

        The registry keeps the profile it started with (its proxy runs whenever the rules were on).
        """
        self.scheduler.use_profile(profile)
        self.moto.use_profile(profile)
        self.moto.faults.apply_profile(profile)
        aws_rules.uninstall()
        aws_rules.install(profile)


def _one_attempt() -> Any:
    from botocore.config import Config

    return Config(
        retries={"total_max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", "1")), "mode": "standard"}
    )


# Callers know provision_service as part of the environment.
from .provision import ProvisionedService, provision_service, wait_for_rollout  # noqa: E402

__all__ = ["ProvisionedService", "Sandbox", "provision_service", "wait_for_rollout"]
