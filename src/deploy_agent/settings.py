"""Worker settings, read from ``DEPLOY_AGENT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy_agent.core.quotas import check_overrides

#: the stage queue of a queue is named after it with this suffix (``Settings.stage_queue``)
STAGE_QUEUE_SUFFIX = ".stages"


class Settings(BaseSettings):
    """Everything a worker (and a publisher) needs to know. Defaults suit a local machine."""

    model_config = SettingsConfigDict(env_prefix="DEPLOY_AGENT_", extra="ignore")

    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (Redis) URL.")
    result_backend: str = Field("redis://127.0.0.1:6379/1", description="Celery result backend URL.")
    state_redis_url: str = Field(
        "redis://127.0.0.1:6379/2", description="Redis for deployment state, events and locks."
    )
    queue: str = Field("deploy", description="The Celery queue the worker consumes.")
    aws_region: str = Field("us-east-1", description="Default AWS region when a message names none.")
    build_root: Path = Field(Path("."), description="Build contexts must lie under this directory.")
    registry_override: str | None = Field(
        None,
        description="Push to this registry host instead of ECR's registry host (the sandbox registry, "
        "e.g. 127.0.0.1:5000). Task definitions still name the ECR host.",
    )
    poll_interval_seconds: float = Field(
        5.0, gt=0, description="Longest wait between two looks at ECS while nothing moves (the slow poll)."
    )
    poll_fast_seconds: float = Field(
        0.25, gt=0, description="Wait between looks right after something changed (the fast poll)."
    )
    lease_seconds: float = Field(
        20.0,
        gt=0,
        description="A running stage's lease: when its host dies, another host runs the stage again "
        "this long after the last renewal (renewed every third of it while the stage runs).",
    )
    dispatch_interval_seconds: float = Field(
        0.2, gt=0, description="How often each worker host publishes the stages on the agenda that are due."
    )
    watch_interval_seconds: float = Field(
        1.0,
        ge=0,
        description="How often one worker host (a leader) describes every in-flight service, ten per "
        "DescribeServices call, four calls at a time, and wakes the deployments whose service moved; "
        "their own polls become a safety net (event_safety_poll_seconds). 0 turns the watcher off: each "
        "deployment polls.",
    )
    poll_budget: int = Field(
        600, gt=0, description="Looks at ECS one deployment may make before slowing down."
    )
    health_interval_default_seconds: float = Field(
        5.0, gt=0, description="Default interval between health checks when the message gives none."
    )
    default_timeout_seconds: int = Field(1800, gt=0, description="Deployment deadline when none is given.")
    visibility_timeout_seconds: int = Field(
        7200, gt=0, description="Redis visibility timeout; kept above the longest task time limit."
    )
    task_time_limit_seconds: int = Field(3600, gt=0, description="Hard time limit of one task run.")
    lock_ttl_seconds: int = Field(
        600,
        gt=0,
        description="Per-service lock TTL; a live deployment extends it, a crashed one lets it expire.",
    )
    lock_wait_seconds: float = Field(2.0, gt=0, description="How often a queued deployment checks the lock.")
    rollback_timeout_seconds: int = Field(900, gt=0, description="How long a rollback may take to settle.")
    zero_downtime_rate_per_second: float = Field(
        20.0, gt=0, description="Requests per second sent to the production URL while traffic moves."
    )
    zero_downtime_settle_seconds: float = Field(
        2.0, ge=0, description="How long the production URL is probed after each listener change."
    )
    keep_releases: int = Field(
        10, ge=1, description="Good releases remembered per service; their revisions are never deregistered."
    )
    redis_ssl_ca_certs: str | None = Field(
        None, description="CA bundle for rediss:// URLs (broker, results and state)."
    )
    aws_max_attempts: int | None = Field(
        None,
        ge=1,
        description="Attempts per AWS call, retries included (default: AWS_MAX_ATTEMPTS or botocore's).",
    )
    aws_retry_mode: Literal["standard", "adaptive"] = Field("adaptive", description="botocore retry mode.")
    aws_retry_base_seconds: float = Field(
        1.0,
        gt=0,
        description="First wait before a step retries an AWS call that still failed transiently "
        "(throttled, 5xx) after botocore's own attempts; doubles per failure in a row, with jitter.",
    )
    aws_retry_cap_seconds: float = Field(
        20.0, gt=0, description="Longest wait between two such retries (the deadline still applies)."
    )
    webhook_urls: list[str] = Field(
        default_factory=list,
        description='Webhooks told about every deployment (JSON list, e.g. ["https://hooks.example/x"]).',
    )
    soft_shutdown_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long running stages may finish before they are requeued."
    )
    keep_images: int = Field(3, ge=0, description="Local images of a repository kept after a build.")
    event_history: int = Field(500, gt=0, description="Progress events kept per deployment.")
    result_ttl_seconds: int = Field(7 * 24 * 3600, gt=0, description="How long results and state are kept.")
    policy: Path | None = Field(
        None,
        description="The operator's policy file (JSON, or TOML when it ends in .toml; docs/policy.md). "
        "Unset: no policy (logged once at start).",
    )
    build_network: Literal["default", "none", "host"] = Field(
        "default",
        description="Network of build RUN steps: Docker's default (bridge), none, or host "
        "(local use only: a build then reaches everything the worker host reaches).",
    )
    approval_poll_seconds: float = Field(
        5.0, gt=0, description="How often a deployment awaiting approval looks for a decision."
    )
    status_token: str | None = Field(
        None,
        description="When set, the status server's pages and API require 'Authorization: Bearer <token>'.",
    )
    status_allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "[::1]"],
        description="Host header values (port left out) the status server answers (DNS rebinding).",
    )
    status_max_threads: int = Field(16, gt=0, description="Most requests the status server serves at once.")
    remote_control: bool = Field(
        False, description="Enable Celery remote control (shutdown, revoke) over the broker; off by default."
    )
    aws_rate_limit: bool = Field(
        True,
        description="Every AWS request attempt first takes a token of the account's quota from a bucket "
        "in the state Redis, shared by every worker on it (README: AWS quotas shared by the fleet).",
    )
    # checked as it is read, so a typo stops the worker at start rather than at its first AWS call
    aws_quotas: Annotated[dict[str, str | float], AfterValidator(check_overrides)] = Field(
        default_factory=dict,
        description="Overrides of AWS's published quotas, as the account has them: JSON object of "
        "'PER_SECOND/BURST' (or a number: the same burst) by 'service:Operation' (that operation gets "
        "a bucket of its own), 'service:group' (a shared bucket, e.g. ecs:service_read) or '*' (the "
        'default of untabled services); e.g. {"ecs:DescribeServices": "20/100"}.',
    )
    aws_quota_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Fraction of each account quota this fleet may use: the console, CI and other tools "
        "of the account draw on the same buckets.",
    )
    aws_account_label: str = Field(
        "default",
        description="Names the account in quota keys when the credentials do not carry its id.",
    )
    redis_sentinel_master: str = Field(
        "mymaster",
        description="With sentinel:// URLs (broker, results, state): the name of the Redis primary "
        "the sentinels watch.",
    )
    redis_sentinel_password: str | None = Field(
        None,
        description="With sentinel:// URLs: the password of the sentinels themselves (the primary's "
        "password goes in the URL, as for redis://).",
    )
    events_queue_url: str | None = Field(
        None,
        description="The SQS queue EventBridge fills with ECS's events (`deploy-agent events setup` "
        "prints it). Set: each worker host reads it and wakes the deployment an event concerns, and "
        "polling becomes a slow safety net (event_safety_poll_seconds). Unset: polling alone.",
    )
    event_safety_poll_seconds: float = Field(
        15.0,
        gt=0,
        description="With events_queue_url: longest wait between two looks at ECS while no event "
        "comes (a lost or late event costs at most this).",
    )

    @property
    def stage_queue(self) -> str:
        """The queue of the started deployments' own work (their next stages, notifications): the
        worker takes from it before ``queue``, so a deployment under way is not held behind new ones."""
        return f"{self.queue}{STAGE_QUEUE_SUFFIX}"
