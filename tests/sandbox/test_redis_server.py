"""Test Redis servers of our own: password, TLS, and data that outlives a restart or a crash."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sandbox_harness.redis_server import LocalRedis
from sandbox_harness.stack import StackConfig

pytestmark = pytest.mark.integration

PASSWORD = "s3cret/with:odd@chars"
#: redis-py retries even a refused password by default; a refusal should fail at once.
ONCE = Retry(NoBackoff(), 0)


class TestAccess:
    def test_tls_and_password_answer_ping(self, tmp_path: Path) -> None:
        """A TLS + password server answers PING to a client that verifies its CA and sends the password."""
        with LocalRedis(root=tmp_path, password=PASSWORD, tls=True) as server:
            assert server.url.startswith("rediss://:s3cret%2Fwith%3Aodd%40chars@127.0.0.1:")
            assert server.ca_file is not None

            client = redis.Redis.from_url(server.url, ssl_ca_certs=str(server.ca_file))

            assert client.ping() is True
            client.close()

    def test_plain_tcp_to_the_tls_port_fails(self, tmp_path: Path) -> None:
        """A client speaking plain RESP to the TLS port gets no answer it can read."""
        with LocalRedis(root=tmp_path, password=PASSWORD, tls=True) as server:
            plain = redis.Redis(
                host="127.0.0.1", port=server.port, password=PASSWORD, socket_timeout=2, retry=ONCE
            )

            with pytest.raises(redis.ConnectionError):
                plain.ping()
            plain.close()

    def test_a_client_that_does_not_trust_the_ca_is_refused(self, tmp_path: Path) -> None:
        """TLS without the sandbox CA fails certificate verification."""
        with LocalRedis(root=tmp_path, tls=True) as server:
            untrusting = redis.Redis.from_url(server.url, socket_timeout=2, retry=ONCE)

            with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
                untrusting.ping()
            untrusting.close()

    def test_a_wrong_password_is_refused(self, tmp_path: Path) -> None:
        """A password-protected server refuses a client with the wrong password."""
        with LocalRedis(root=tmp_path, password=PASSWORD) as server:
            assert server.url.startswith("redis://:")
            wrong = redis.Redis(
                host="127.0.0.1", port=server.port, password="nope", socket_timeout=2, retry=ONCE
            )

            with pytest.raises(redis.AuthenticationError):
                wrong.ping()
            wrong.close()


class TestPersistence:
    @pytest.mark.parametrize("crash", [False, True], ids=["graceful", "crash"])
    def test_restart_keeps_a_key(self, tmp_path: Path, crash: bool) -> None:
        """A key written before a restart (SIGTERM or SIGKILL) is there after it, on the same port."""
        with LocalRedis(root=tmp_path, password=PASSWORD, tls=True) as server:
            port, pid = server.port, server.pid
            client = server.client(db=2)
            client.set("deployment:42", "rolling")
            client.close()

            server.restart(crash=crash)

            assert (server.port, server.pid != pid) == (port, True)
            client = server.client(db=2)
            assert client.get("deployment:42") == b"rolling"
            client.close()

    def test_a_volatile_server_forgets_on_restart(self, tmp_path: Path) -> None:
        """persistent=False keeps nothing across a restart."""
        with LocalRedis(root=tmp_path, persistent=False) as server:
            client = server.client()
            client.set("k", "v")
            client.close()

            server.restart()

            client = server.client()
            assert client.get("k") is None
            client.close()

    def test_stop_frees_the_port(self, tmp_path: Path) -> None:
        """After stop() nothing listens on the server's port."""
        server = LocalRedis(root=tmp_path).start()
        server.stop()

        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", server.port))


class TestStackConfig:
    def test_a_tls_redis_reaches_the_worker_environment(self, tmp_path: Path) -> None:
        """StackConfig passes a full rediss:// URL per database and the CA file to the worker."""
        config = StackConfig(
            aws_endpoint_url="http://127.0.0.1:1",
            registry_host="127.0.0.1:2",
            build_root=tmp_path,
            redis_url="rediss://:pw@127.0.0.1:7000",
            redis_ssl_ca="/tmp/ca.crt",
        )

        env = config.env()

        assert env["DEPLOY_AGENT_BROKER_URL"] == "rediss://:pw@127.0.0.1:7000/0"
        assert env["DEPLOY_AGENT_STATE_REDIS_URL"] == "rediss://:pw@127.0.0.1:7000/2"
        assert env["DEPLOY_AGENT_REDIS_SSL_CA_CERTS"] == "/tmp/ca.crt"

    def test_no_ca_means_no_tls_variable(self, tmp_path: Path) -> None:
        """Without redis_ssl_ca the worker environment carries no CA variable."""
        config = StackConfig(aws_endpoint_url="http://127.0.0.1:1", registry_host="h", build_root=tmp_path)

        assert "DEPLOY_AGENT_REDIS_SSL_CA_CERTS" not in config.env()
