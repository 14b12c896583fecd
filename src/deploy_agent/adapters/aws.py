"""boto3 clients made lazily per process, and the one place botocore errors become ours.

Every AWS call of the adapters goes through :func:`call` (or the :func:`aws_call` context
manager), which maps::

    ClientError  code in THROTTLE_CODES   -> AwsThrottled
                 code in NOT_FOUND_CODES  -> AwsNotFound
                 any other code           -> AwsError
    BotoCoreError (EndpointConnectionError, ReadTimeoutError, NoCredentialsError, ...) -> AwsError

with ``service``, ``operation`` and ``code`` set on the raised error.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import boto3.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from deploy_agent.core.errors import AwsError, AwsNotFound, AwsThrottled

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client

T = TypeVar("T")

#: Error codes AWS uses for "slow down" (the ones ECS, ECR, ELBv2 and CloudWatch answer with, and
#: the other spellings botocore's standard retry mode treats as throttling).
THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "EC2ThrottledException",
    }
)

#: Error codes that mean "the resource you named does not exist".
NOT_FOUND_CODES = frozenset(
    {
        "ClusterNotFoundException",
        "ServiceNotFoundException",
        "RepositoryNotFoundException",
        "ImageNotFoundException",
        "LifecyclePolicyNotFoundException",
        "RepositoryPolicyNotFoundException",
        "TargetGroupNotFound",
        "LoadBalancerNotFound",
        "ListenerNotFound",
        "RuleNotFound",
        "TargetGroupNotFoundException",
        "LoadBalancerNotFoundException",
        "ListenerNotFoundException",
        "RuleNotFoundException",
        "ResourceNotFoundException",
        "ResourceNotFound",
        "ParameterNotFound",
        "NoSuchEntity",
    }
)

#: ECS answers a missing task definition with a generic ClientException and this text.
_MISSING_TASK_DEFINITION = "unable to describe task definition"

#: attempts per call when neither the caller nor ``AWS_MAX_ATTEMPTS`` says: botocore's 3 give up
#: inside one throttling burst; with standard/adaptive back-off (up to 20 s each) 8 ride one out
#: (docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html)
DEFAULT_MAX_ATTEMPTS = 8

ThrottleCallback = Callable[[str, str], None]
"""Called with (service, operation) for every throttled attempt, retried or not."""


class RateLimiter(Protocol):
    """The fleet's AWS quotas (``adapters.rate_limit``): one token per request attempt."""

    def acquire(self, account: str, region: str, service: str, operation: str) -> float:
        """Return the seconds waited for a token of this call's bucket."""


def translate_client_error(exc: ClientError, service: str, operation: str) -> AwsError:
    """Return our error for a botocore ``ClientError`` (not raised; the caller raises it)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    text = str(error.get("Message") or "")
    message = f"{service} {operation} failed: {code}" + (f": {text}" if text else "")
    if code in THROTTLE_CODES:
        return AwsThrottled(message, service=service, operation=operation, code=code)
    if code in NOT_FOUND_CODES or (code == "ClientException" and _MISSING_TASK_DEFINITION in text.lower()):
        return AwsNotFound(message, service=service, operation=operation, code=code)
    return AwsError(message, service=service, operation=operation, code=code)


def translate_botocore_error(exc: BotoCoreError, service: str, operation: str) -> AwsError:
    """Return our error for a client-side botocore failure (connection, timeout, credentials)."""
    code = type(exc).__name__
    return AwsError(
        f"{service} {operation} failed: {code}: {exc}", service=service, operation=operation, code=code
    )


@contextmanager
def aws_call(service: str, operation: str) -> Iterator[None]:
    """Translate botocore errors raised inside the block into the ``AwsError`` tree."""
    try:
        yield
    except ClientError as exc:
        raise translate_client_error(exc, service, operation) from exc
    except BotoCoreError as exc:
        raise translate_botocore_error(exc, service, operation) from exc


def call(method: Callable[..., T], **kwargs: Any) -> T:
    """Return ``method(**kwargs)`` for a bound boto3 client method, with errors translated.

    The service and operation names come from the client itself, e.g. ``("ecs", "DescribeServices")``.
    """
    client = getattr(method, "__self__", None)
    meta = getattr(client, "meta", None)
    if meta is not None:
        service = str(meta.service_model.service_name)
        operation = str(meta.method_to_api_mapping.get(method.__name__, method.__name__))
    else:  # not a boto3 method; still translate, naming what we can
        service, operation = "aws", getattr(method, "__name__", "call")
    with aws_call(service, operation):
        return method(**kwargs)


class AwsClients:
    """boto3 clients for one region, made on first use in each process.

    Sessions and clients must not cross a ``fork`` (Celery prefork children), so the clients are
    rebuilt when the process id changes. ``endpoint_url=None`` lets boto3 read ``AWS_ENDPOINT_URL``
    / ``AWS_ENDPOINT_URL_<SERVICE>``; ``max_attempts=None`` lets it read ``AWS_MAX_ATTEMPTS``, else
    ``DEFAULT_MAX_ATTEMPTS``.
    ``max_attempts`` counts every attempt, the first one included (as ``AWS_MAX_ATTEMPTS`` does).

    With a ``rate_limiter``, every HTTP attempt (``before-send`` fires per attempt, retries included,
    which is what AWS counts) first takes a token of the account's quota. The account is the one
    the credentials name when they carry it (``AWS_ACCOUNT_ID``, SSO, assumed roles), else
    ``account_label``: an STS call per client would cost more than it protects.
    """

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        max_attempts: int | None = None,
        *,
        retry_mode: Literal["standard", "adaptive"] = "standard",
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        on_throttle: ThrottleCallback | None = None,
        rate_limiter: RateLimiter | None = None,
        account_label: str = "default",
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.max_attempts = max_attempts
        self.retry_mode = retry_mode
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.on_throttle = on_throttle
        self.rate_limiter = rate_limiter
        self.account_label = account_label
        self._account: str | None = None
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"AwsClients(region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def ecs(self) -> ECSClient:
        return self._client("ecs")  # type: ignore[no-any-return]

    @property
    def ecr(self) -> ECRClient:
        return self._client("ecr")  # type: ignore[no-any-return]

    @property
    def elbv2(self) -> ElasticLoadBalancingv2Client:
        return self._client("elbv2")  # type: ignore[no-any-return]

    @property
    def cloudwatch(self) -> CloudWatchClient:
        return self._client("cloudwatch")  # type: ignore[no-any-return]

    def client(self, service_name: str) -> Any:
        """Return the client of any other service (logs, secretsmanager, ...), made the same way."""
        return self._client(service_name)

    def _config(self) -> Config:
        retries: dict[str, Any] = {"mode": self.retry_mode}
        attempts = self.max_attempts
        if attempts is None and not os.environ.get("AWS_MAX_ATTEMPTS"):
            attempts = DEFAULT_MAX_ATTEMPTS
        if attempts is not None:
            retries["total_max_attempts"] = attempts
        return Config(
            region_name=self.region,
            retries=retries,  # type: ignore[arg-type]
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )

    def _client(self, service_name: str) -> Any:
        with self._lock:
            pid = os.getpid()
            if self._pid != pid:
                self._pid, self._session, self._clients = pid, boto3.session.Session(), {}
                self._account = None
            client = self._clients.get(service_name)
            if client is None:
                assert self._session is not None
                client = self._session.client(  # type: ignore[call-overload]
                    service_name,
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=self._config(),
                )
                if self.on_throttle is not None:
                    client.meta.events.register(
                        "response-received", functools.partial(self._count_throttle, service_name)
                    )
                if self.rate_limiter is not None:
                    client.meta.events.register(
                        "before-send", functools.partial(self._take_token, service_name)
                    )
                self._clients[service_name] = client
            return client

    def account(self) -> str:
        """Return the account the quotas are counted for: the credentials' own, else ``account_label``."""
        if self._account is None:
            # Credentials resolve once per session and the client just made resolved them: cheap.
            credentials = self._session.get_credentials() if self._session is not None else None
            found = getattr(credentials, "account_id", None) if credentials is not None else None
            self._account = str(found) if found else self.account_label
        return self._account

    def _take_token(self, service: str, event_name: str = "", **_: Any) -> None:
        if self.rate_limiter is None:
            return
        # the event is named before-send.<service-id>.<Operation>
        operation = event_name.rpartition(".")[2] or "unknown"
        self.rate_limiter.acquire(self.account(), self.region, service, operation)

    def _count_throttle(self, service: str, parsed_response: Any = None, **kwargs: Any) -> None:
        if self.on_throttle is None or not isinstance(parsed_response, dict):
            return
        code = parsed_response.get("Error", {}).get("Code")
        if code in THROTTLE_CODES:
            # the event is named response-received.<service-id>.<Operation>
            operation = str(kwargs.get("event_name", "")).rpartition(".")[2] or "unknown"
            self.on_throttle(service, operation)
