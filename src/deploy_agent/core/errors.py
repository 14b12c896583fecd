"""The project's own errors. Third-party errors are translated into these once, in ``adapters``.

The tree::

    DeployError                     anything that ends or bends a deployment
    ├── RequestRejected             the message is invalid; nothing was touched
    ├── BuildFailed                 the Docker build failed (message = the builder's error line)
    ├── PushFailed                  the push failed or reported no digest
    ├── AwsError                    an AWS call failed (carries service, operation, code)
    │   ├── AwsThrottled            the call was throttled after retries
    │   └── AwsNotFound             the named resource does not exist
    ├── RolloutFailed               ECS failed our deployment (circuit breaker, tasks stopping)
    ├── HealthCheckFailed           the release did not pass its HTTP health check
    ├── DeadlineExceeded            the whole-deployment deadline passed
    └── PreflightFailed             the AWS setup the message names is not usable
"""

from __future__ import annotations


class DeployError(Exception):
    """Root of the tree. ``kind`` is the stable name written into results (``error.type``)."""

    kind = "deploy_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict[str, str]:
        """Return the JSON shape of ``DeploymentResult.error``."""
        return {"type": self.kind, "message": self.message}


class RequestRejected(DeployError):
    kind = "request_rejected"

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        #: one ``{"field": "a.b", "problem": "..."}`` per offending field
        self.errors = errors or []


class BuildFailed(DeployError):
    kind = "build_failed"


class PushFailed(DeployError):
    kind = "push_failed"


class AwsError(DeployError):
    kind = "aws_error"

    def __init__(self, message: str, *, service: str = "", operation: str = "", code: str = "") -> None:
        super().__init__(message)
        self.service = service
        self.operation = operation
        self.code = code


class AwsThrottled(AwsError):
    kind = "aws_throttled"


class AwsNotFound(AwsError):
    kind = "aws_not_found"


class RolloutFailed(DeployError):
    kind = "rollout_failed"


class HealthCheckFailed(DeployError):
    kind = "health_check_failed"


class DeadlineExceeded(DeployError):
    kind = "deadline_exceeded"


class PreflightFailed(DeployError):
    kind = "preflight_failed"
