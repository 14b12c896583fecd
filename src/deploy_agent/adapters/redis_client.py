"""The connection to the state Redis: one pool per URL and process, riding out restarts and failovers.

The URL is ``redis://``, ``rediss://`` or, for a primary watched by Redis Sentinel, the form Celery
and kombu use: ``sentinel://[:PASSWORD@]HOST:PORT/DB;sentinel://HOST2:PORT/DB;...`` (one entry per
sentinel; the password and database are the primary's, read off the first entry). The client then
asks the sentinels for the primary on every new connection, so a failover looks like a restart.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from kombu.exceptions import OperationalError
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

__all__ = ["Redis", "SentinelAddress", "is_sentinel_url", "parse_sentinel_url", "redis_client"]

SENTINEL_SCHEME = "sentinel"
SENTINEL_DEFAULT_PORT = 26379

#: errors after which a command is tried again (on a new connection). A refused connect (Redis
#: restarting) surfaces as the socket's own OSError, which redis-py's default set misses. ReadOnlyError:
#: a primary demoted by a failover refuses writes on connections opened before it; redis-py's sentinel
#: pool turns that into a ConnectionError, and behind a name that follows the primary (a managed
#: service's primary endpoint) a new connection reaches the new primary.
_RETRIED = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError)

#: what publishing to the broker raises when Redis goes away mid-publish: kombu's and redis-py's
#: errors, the socket's, and, in a Sentinel failover, an AttributeError from a kombu producer
#: channel whose connection was closed under it (``'NoneType' object has no attribute 'client'``)
BROKER_PUBLISH_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    redis.RedisError,
    OSError,
    AttributeError,
)


@dataclass(frozen=True)
class SentinelAddress:
    """Where the sentinels listen, and the primary's database and credentials."""

    sentinels: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel_url(url: str) -> bool:
    """Return whether ``url`` names Redis through its sentinels (``sentinel://...``)."""
    return url.strip().lower().startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Return the sentinels, database and primary credentials a ``sentinel://`` URL names."""
    entries = [entry.strip() for entry in url.split(";") if entry.strip()]
    if not entries:
        raise ValueError("a sentinel URL names no sentinel:// entry")
    sentinels: list[tuple[str, int]] = []
    for entry in entries:
        parts = urlsplit(entry)
        if parts.scheme.lower() != SENTINEL_SCHEME or not parts.hostname:
            raise ValueError(f"not a sentinel://HOST:PORT entry: {parts.scheme}://{parts.hostname or ''}")
        sentinels.append((parts.hostname, parts.port or SENTINEL_DEFAULT_PORT))
    first = urlsplit(entries[0])
    path = first.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"a sentinel URL's path is the database number, not {path!r}")
    return SentinelAddress(
        sentinels=tuple(sentinels),
        db=int(path or 0),
        username=unquote(first.username) if first.username else None,
        password=unquote(first.password) if first.password else None,
    )


def _connection_options(*, retry_socket_errors: bool = True) -> dict[str, Any]:
    """Return the options of every state Redis connection.

    ``retry_socket_errors=False`` for sentinel pools: redis-py retries a connect to one address
    with the same policy inside the retry that asks the sentinels for the address, so with socket
    errors retried there it knocks on the dead primary for two minutes before asking again.
    Without, a refused connect becomes a ConnectionError and the next try asks the sentinels.
    """
    errors = (*_RETRIED, OSError) if retry_socket_errors else _RETRIED
    return {
        "health_check_interval": 30,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        # A Redis restart or failover must not end a deployment: retry for about a minute with backoff.
        "retry": Retry(ExponentialBackoff(cap=5.0, base=0.1), retries=30, supported_errors=errors),
        "retry_on_error": list(_RETRIED),
    }


@functools.cache
def _redis_pool(url: str, ssl_ca_certs: str | None) -> redis.ConnectionPool:
    options = _connection_options()
    if url.startswith("rediss://"):
        options["ssl_check_hostname"] = True  # redis-py 5 does not check it unless told to
        if ssl_ca_certs:
            options["ssl_ca_certs"] = ssl_ca_certs
    return redis.ConnectionPool.from_url(url, **options)


@functools.cache
def _sentinel_pool(url: str, master: str, sentinel_password: str | None) -> redis.ConnectionPool:
    address = parse_sentinel_url(url)
    # The sentinels' own connections: short timeouts, so a dead sentinel is skipped quickly.
    sentinel_options: dict[str, Any] = {"socket_connect_timeout": 1, "socket_timeout": 1}
    if sentinel_password:
        sentinel_options["password"] = sentinel_password
    sentinel = Sentinel(
        list(address.sentinels),
        sentinel_kwargs=sentinel_options,
        db=address.db,
        username=address.username,
        password=address.password,
        **_connection_options(retry_socket_errors=False),
    )
    pool: redis.ConnectionPool = sentinel.master_for(master).connection_pool
    return pool


def redis_client(
    url: str,
    ssl_ca_certs: str | None = None,
    *,
    sentinel_master: str = "mymaster",
    sentinel_password: str | None = None,
) -> Redis:
    """Return a client for the state Redis that rides out restarts and, via sentinels, failovers.

    Password and TLS come with a ``redis[s]://`` URL; a ``sentinel://`` URL is served by the primary
    the sentinels name ``sentinel_master`` (``sentinel_password``: the sentinels' own password).
    """
    if is_sentinel_url(url):
        return redis.Redis(connection_pool=_sentinel_pool(url, sentinel_master, sentinel_password))
    return redis.Redis(connection_pool=_redis_pool(url, ssl_ca_certs))
