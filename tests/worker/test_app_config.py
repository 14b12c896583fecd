"""The Celery configuration keeps the message out of Redis, remote control off, and checks TLS names."""

from __future__ import annotations

import ssl

from deploy_agent.settings import Settings
from deploy_agent.worker.app import celery_config, create_app


def test_no_task_arguments_in_results_or_events() -> None:
    """Results hold no kwargs (result_extended off) and no task events carry kwargsrepr."""
    config = celery_config(Settings())
    assert config["result_extended"] is False
    assert config["worker_send_task_events"] is False
    assert config["task_send_sent_event"] is False


def test_remote_control_is_off_unless_the_setting_turns_it_on() -> None:
    assert celery_config(Settings())["worker_enable_remote_control"] is False
    assert celery_config(Settings(remote_control=True))["worker_enable_remote_control"] is True
    app = create_app(Settings(), set_as_current=False)
    assert app.conf.worker_enable_remote_control is False


def test_rediss_checks_the_host_name_for_broker_and_results() -> None:
    config = celery_config(
        Settings(
            broker_url="rediss://redis.internal:6380/0",
            result_backend="rediss://redis.internal:6380/1",
            redis_ssl_ca_certs="/etc/ca.pem",
        )
    )
    for key in ("broker_use_ssl", "redis_backend_use_ssl"):
        assert config[key] == {
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
            "ssl_ca_certs": "/etc/ca.pem",
            "ssl_check_hostname": True,
        }


def test_plain_redis_has_no_tls_options() -> None:
    config = celery_config(Settings())
    assert "broker_use_ssl" not in config
    assert "redis_backend_use_ssl" not in config
