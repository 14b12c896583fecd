"""The state Redis URL: ``sentinel://`` lists are read like Celery reads them; both forms retry failovers."""

from __future__ import annotations

import pytest
import redis
from redis.sentinel import MasterNotFoundError, SentinelConnectionPool

from deploy_agent.adapters.redis_client import (
    SentinelAddress,
    is_sentinel_url,
    parse_sentinel_url,
    redis_client,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "sentinel://10.0.0.1:26379/2;sentinel://10.0.0.2:26380/2",
            SentinelAddress((("10.0.0.1", 26379), ("10.0.0.2", 26380)), db=2),
            id="two sentinels and a database",
        ),
        pytest.param(
            "sentinel://s1", SentinelAddress((("s1", 26379),), db=0), id="no port or database: the defaults"
        ),
        pytest.param(
            "sentinel://:p%40ss@s1:1/3; sentinel://s2:2/3",
            SentinelAddress((("s1", 1), ("s2", 2)), db=3, password="p@ss"),
            id="the primary's password is URL-decoded and spaces around entries ignored",
        ),
        pytest.param(
            "sentinel://app:pw@s1:1/0;",
            SentinelAddress((("s1", 1),), db=0, username="app", password="pw"),
            id="a user name and a trailing separator",
        ),
    ],
)
def test_a_sentinel_url_names_its_sentinels_database_and_credentials(
    url: str, expected: SentinelAddress
) -> None:
    """Each ``;``-separated entry is a sentinel; database and password come from the first entry."""
    assert parse_sentinel_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("", id="empty"),
        pytest.param("sentinel://s1:1/0;redis://r:6379/0", id="a redis entry among sentinels"),
        pytest.param("sentinel://s1:1/mymaster", id="a master name where the database goes"),
    ],
)
def test_a_malformed_sentinel_url_is_refused(url: str) -> None:
    """A list that is not all sentinels, or names no database number, raises ValueError."""
    with pytest.raises(ValueError, match="sentinel"):
        parse_sentinel_url(url)


@pytest.mark.parametrize(
    ("url", "sentinel"),
    [
        ("sentinel://h:1/0", True),
        ("SENTINEL://h:1", True),
        ("redis://h:6379/0", False),
        ("rediss://h/0", False),
    ],
)
def test_only_the_sentinel_scheme_counts_as_sentinel(url: str, sentinel: bool) -> None:
    assert is_sentinel_url(url) is sentinel


def test_a_sentinel_url_gives_a_client_of_the_named_primary_that_retries_failovers() -> None:
    """The client asks the sentinels for ``sentinel_master`` and retries connection and read-only errors."""
    client = redis_client(
        "sentinel://:pw@127.0.0.1:1/5;sentinel://127.0.0.1:2/5",
        sentinel_master="orders",
        sentinel_password="s",
    )
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "orders"
    assert pool.is_master
    assert pool.connection_kwargs["db"] == 5
    assert pool.connection_kwargs["password"] == "pw"
    assert [s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels] == [1, 2]
    assert pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs["password"] == "s"
    retried = tuple(pool.connection_kwargs["retry_on_error"])
    assert issubclass(redis.exceptions.ReadOnlyError, retried)
    assert issubclass(MasterNotFoundError, retried)
    assert pool.connection_kwargs["retry"]._retries == 30


def test_the_same_url_shares_one_pool_per_process() -> None:
    url = "sentinel://127.0.0.1:3/0"
    assert redis_client(url).connection_pool is redis_client(url).connection_pool
    assert redis_client(url).connection_pool is not redis_client(url, sentinel_master="other").connection_pool
