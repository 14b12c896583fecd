"""Broker and result backend behind Redis Sentinel: the master name, and retries that outlast a failover."""

from __future__ import annotations

from deploy_agent.settings import Settings
from deploy_agent.worker.app import celery_config, create_app

SENTINELS = "sentinel://127.0.0.1:26379/0;sentinel://127.0.0.1:26380/0"


def sentinel_settings(**extra: object) -> Settings:
    return Settings(
        broker_url=SENTINELS,
        result_backend=SENTINELS.replace("/0", "/1"),
        redis_sentinel_master="deploys",
        **extra,  # type: ignore[arg-type]
    )


def test_sentinel_urls_name_the_master_for_broker_and_results_keeping_the_visibility_timeout() -> None:
    """Both transports get ``master_name`` and the visibility timeout set beside it."""
    config = celery_config(sentinel_settings(visibility_timeout_seconds=9000))
    for key in ("broker_transport_options", "result_backend_transport_options"):
        assert config[key]["master_name"] == "deploys"
        assert config[key]["visibility_timeout"] == 9000
    assert config["visibility_timeout"] == 9000


def test_the_sentinels_password_goes_to_the_sentinel_connections_only() -> None:
    config = celery_config(sentinel_settings(redis_sentinel_password="s3cret"))
    for key in ("broker_transport_options", "result_backend_transport_options"):
        assert config[key]["sentinel_kwargs"]["password"] == "s3cret"
    assert "password" not in celery_config(sentinel_settings())["broker_transport_options"]["sentinel_kwargs"]


def test_behind_sentinels_publishing_and_results_retry_for_about_a_minute() -> None:
    """An election takes seconds to a minute: publishes and result writes keep trying that long."""
    config = celery_config(sentinel_settings())
    policy = config["task_publish_retry_policy"]
    assert config["task_publish_retry"] is True
    assert policy["max_retries"] * policy["interval_max"] >= 60
    assert (
        config["result_backend_max_retries"] * config["result_backend_max_sleep_between_retries_ms"] >= 60_000
    )
    assert config["result_backend_transport_options"]["retry_policy"]["max_retries"] >= 60


def test_plain_redis_keeps_its_short_retries_and_no_sentinel_options() -> None:
    config = celery_config(Settings())
    assert "master_name" not in config["broker_transport_options"]
    assert "master_name" not in config["result_backend_transport_options"]
    assert "task_publish_retry_policy" not in config
    assert config["result_backend_max_retries"] == 10


def test_celery_builds_a_sentinel_backend_from_the_configuration_without_connecting() -> None:
    """Celery picks its Sentinel result backend and kombu's sentinel transport for these URLs."""
    app = create_app(sentinel_settings(), set_as_current=False)
    assert type(app.backend).__name__ == "SentinelBackend"
    assert app.connection_for_write().transport_cls == "sentinel"
