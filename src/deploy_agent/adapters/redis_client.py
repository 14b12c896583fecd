"""The connection to the state Redis: one pool per URL and process, riding out Redis restarts."""

from __future__ import annotations

import functools
from typing import Any

import redis
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

__all__ = ["Redis", "redis_client"]


@functools.cache
def _redis_pool(url: str, ssl_ca_certs: str | None) -> redis.ConnectionPool:
    options: dict[str, Any] = {
        "health_check_interval": 30,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        # A Redis restart must not end a deployment: retry for about a minute with backoff.
        # OSError too: a refused connect (Redis restarting) surfaces as the socket's own error, which
        # redis-py's default set misses, so a fresh connection was not retried at all.
        "retry": Retry(
            ExponentialBackoff(cap=5.0, base=0.1),
            retries=30,
            supported_errors=(redis.ConnectionError, redis.TimeoutError, OSError),
        ),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }
    if url.startswith("rediss://"):
        options["ssl_check_hostname"] = True  # redis-py 5 does not check it unless told to
        if ssl_ca_certs:
            options["ssl_ca_certs"] = ssl_ca_certs
    return redis.ConnectionPool.from_url(url, **options)


def redis_client(url: str, ssl_ca_certs: str | None = None) -> Redis:
    """Return a client for the state Redis that rides out restarts (password and TLS via the URL)."""
    return redis.Redis(connection_pool=_redis_pool(url, ssl_ca_certs))
