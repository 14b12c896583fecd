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


#: server-side failures that say nothing about the request (HTTP 5xx), and client-side transport
#: failures (botocore exception names), after botocore's own retries
SERVER_ERROR_CODES = frozenset(
    {
        "ServerException",  # ECS's 5xx
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServiceError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ProxyConnectionError",
    }
)

#: mutating calls that are safe to send again after an unknown outcome: idempotent, or their
#: effect is checked before they are re-sent (UpdateService: ``strategies.rolling``)
SAFE_TO_RESEND = frozenset(
    {
        "UpdateService",
        "ModifyListener",
        "ModifyRule",
        "DeleteService",
        "DeregisterTaskDefinition",
        "PutLifecyclePolicy",
    }
)

_READ_PREFIXES = ("Describe", "List", "Get", "BatchGet", "BatchCheck")


def is_read_operation(operation: str) -> bool:
    """Does this AWS operation only read?"""
    return operation.startswith(_READ_PREFIXES)


def is_transient(error: DeployError) -> bool:
    """May the step that raised ``error`` simply be tried again later?

    A throttled call was refused before AWS acted on it, so any call may be retried. A 5xx or
    connection failure leaves a mutating call's effect unknown: only reads and ``SAFE_TO_RESEND``.
    """
    if isinstance(error, AwsThrottled):
        return True
    if not isinstance(error, AwsError) or isinstance(error, AwsNotFound):
        return False
    if error.code not in SERVER_ERROR_CODES:
        return False
    return is_read_operation(error.operation) or error.operation in SAFE_TO_RESEND
