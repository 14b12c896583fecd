"""The operator's policy: what publishers (often AI agents) may ask a worker to do (DESIGN 7b).

A file set by the operator (``DEPLOY_AGENT_POLICY``, JSON or TOML; schema in
``schemas/policy.v1.json``, explained in ``docs/policy.md``). Nothing in a message overrides it.

Patterns are shell-style globs (``*``, ``?``, ``[...]``), matched against the whole value, case
sensitive. A pattern list that is left out does not restrict; an empty list allows nothing. The
dangerous switches (host networking, privileged containers, other log drivers) are off unless the
policy turns them on, and outgoing requests never reach loopback, private or link-local addresses
unless ``outbound`` allows them.
"""

from __future__ import annotations

import json
import tomllib
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

Pattern = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
Patterns = Annotated[list[Pattern], Field(max_length=1000)]


class PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def matches(patterns: list[str] | None, value: str) -> bool:
    """Return whether ``value`` is allowed by ``patterns`` (None: no restriction)."""
    if patterns is None:
        return True
    return any(fnmatchcase(value, pattern) for pattern in patterns)


class OutboundPolicy(PolicyModel):
    """Where outgoing requests named by a message (health, test, production URLs, webhooks) may go."""

    url_hosts: Patterns | None = Field(
        None,
        description="Host names (or IP literals) that health, test and production URLs may name; "
        "left out: any host.",
    )
    webhook_hosts: Patterns | None = Field(
        None, description="Host names that webhooks (a message's notify.webhooks) may name; left out: any."
    )
    allow_loopback: bool = Field(False, description="Allow addresses in 127.0.0.0/8 and ::1 (after DNS).")
    allow_private: bool = Field(
        False,
        description="Allow private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) after DNS.",
    )
    allow_link_local: bool = Field(
        False,
        description="Allow link-local addresses (169.254/16 with the instance metadata service, fe80::/10).",
    )


class ApprovalRule(PolicyModel):
    """Deployments that match wait for a human's approval before they touch production."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Shown in results and events, e.g. 'production'."
    )
    regions: Patterns | None = None
    clusters: Patterns | None = None
    services: Patterns | None = None
    timeout_seconds: int = Field(
        24 * 3600,
        gt=0,
        le=30 * 24 * 3600,
        description="How long a deployment waits before it ends timed_out.",
    )

    def applies(self, region: str, cluster: str, service: str) -> bool:
        return (
            matches(self.regions, region)
            and matches(self.clusters, cluster)
            and matches(self.services, service)
        )


class ClusterLimit(PolicyModel):
    clusters: Patterns = Field(description="Clusters this limit applies to (first matching rule wins).")
    max_concurrent_deployments: int = Field(gt=0, le=10_000)


class Policy(PolicyModel):
    """The whole policy file."""

    version: int = Field(1, ge=1, le=1, description="Schema version of the policy file.")
    regions: Patterns | None = Field(None, description="AWS regions a message may name.")
    clusters: Patterns | None = Field(None, description="ECS clusters a message may deploy to.")
    services: Patterns | None = Field(None, description="ECS service names a message may deploy.")
    repositories: Patterns | None = Field(None, description="ECR repository names images may come from.")
    registries: Patterns | None = Field(
        None,
        description="Registry hosts of every image a task definition names (e.g. "
        "'123456789012.dkr.ecr.*.amazonaws.com').",
    )
    task_role_arns: Patterns | None = Field(None, description="Task role ARNs a task definition may use.")
    execution_role_arns: Patterns | None = Field(
        None, description="Execution role ARNs a task definition may use."
    )
    secret_arn_prefixes: Annotated[list[Pattern], Field(max_length=1000)] | None = Field(
        None, description="Prefixes of the Secrets Manager / SSM ARNs containers may read (plain prefixes)."
    )
    allow_host_network: bool = Field(False, description="Allow task definitions with network_mode 'host'.")
    allow_privileged: bool = Field(False, description="Allow privileged containers.")
    log_drivers: Patterns = Field(
        default_factory=lambda: ["awslogs"], description="Log drivers containers may use."
    )
    allow_ecr_lifecycle_policy: bool = Field(
        False,
        description="Allow a message's ecr.lifecycle_policy (keep_last or policy_text), which is put on the "
        "repository, an existing one included, and can expire its images.",
    )
    max_desired_count: int | None = Field(
        None, ge=0, description="Largest desired count a message may ask for."
    )
    max_cpu: int | None = Field(
        None, gt=0, description="Largest task cpu (units) a task definition may ask for."
    )
    max_memory: int | None = Field(
        None, gt=0, description="Largest task memory (MiB) a task definition may ask for."
    )
    max_concurrent_deployments_per_cluster: int | None = Field(
        None, gt=0, description="At most this many deployments run at once in any one cluster."
    )
    cluster_limits: Annotated[list[ClusterLimit], Field(max_length=1000)] = Field(
        default_factory=list,
        description="Per-cluster limits that replace the one above for matching clusters.",
    )
    approvals: Annotated[list[ApprovalRule], Field(max_length=1000)] = Field(
        default_factory=list,
        description="Deployments that need a human's approval (first matching rule wins).",
    )
    outbound: OutboundPolicy = Field(default_factory=OutboundPolicy)

    def approval_for(self, region: str, cluster: str, service: str) -> ApprovalRule | None:
        """Return the first approval rule that applies to a deployment of this service, or None."""
        return next((rule for rule in self.approvals if rule.applies(region, cluster, service)), None)

    def cluster_limit(self, cluster: str) -> int | None:
        """Return how many deployments may run at once in ``cluster`` (None: no limit)."""
        for limit in self.cluster_limits:
            if matches(limit.clusters, cluster):
                return limit.max_concurrent_deployments
        return self.max_concurrent_deployments_per_cluster


class PolicyError(ValueError):
    """The policy file cannot be read or is invalid; the worker does not start with it."""


def load_policy(path: str | Path) -> Policy:
    """Read a policy file (``.toml`` as TOML, anything else as JSON) or raise :class:`PolicyError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file {path}: {exc.strerror or exc}") from None
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise PolicyError(
            f"the policy file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}"
        ) from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"the policy file {path} is invalid: {problems}") from None


def policy_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the policy file (committed as ``schemas/policy.v1.json``)."""
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://deploy-agent.dev/schemas/policy.v1.json"
    schema["title"] = "deploy-agent operator policy (version 1)"
    return schema


def render_policy_schema() -> str:
    """Return the schema as committed in ``schemas/policy.v1.json``."""
    return json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m deploy_agent.models.policy > schemas/policy.v1.json
    import sys

    sys.stdout.write(render_policy_schema())
