"""adapters.outbound against real HTTP(S) servers on loopback: the one way out for URLs a message names."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from deploy_agent.adapters.health import HttpProber
from deploy_agent.adapters.outbound import Outbound
from deploy_agent.adapters.outbound_rules import (
    MAX_BODY_BYTES,
    OutboundFailed,
    OutboundRefused,
    OutboundRules,
    address_class,
    literal_address,
)
from deploy_agent.adapters.traffic_probe import TrafficProbe
from deploy_agent.adapters.webhook import NotificationFailed, WebhookSender
from deploy_agent.core.redact import mask_url
from deploy_agent.models.policy import OutboundPolicy

LOOPBACK_ONLY = OutboundRules(allow_loopback=True, allow_private=False, allow_link_local=False)
NOTHING_INTERNAL = OutboundRules(allow_loopback=False, allow_private=False, allow_link_local=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]]

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, "headers": dict(self.headers)})
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/target")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            body = b"x" * (4 * MAX_BODY_BYTES)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/trickle-body":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self._trickle(100)
        elif self.path == "/trickle-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(100):
                self.wfile.write(b"X-Slow: 1\r\n")
                self.wfile.flush()
                time.sleep(0.05)
        else:
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.seen.append({"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)})
        self.send_response(500 if self.path.startswith("/fail") else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _trickle(self, count: int) -> None:
        for _ in range(count):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.05)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        handler = type("Handler", (_Handler,), {"seen": self.seen})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


class TestAddressClasses:
    @pytest.mark.parametrize(
        ("host", "kind"),
        [
            ("169.254.169.254", "link-local"),
            ("2852039166", "link-local"),  # IMDS as one decimal number
            ("0251.0376.0251.0376", "link-local"),  # ... in octal
            ("0xa9.0xfe.0xa9.0xfe", "link-local"),  # ... in hex
            ("[::ffff:169.254.169.254]", "link-local"),  # IPv4-mapped IPv6
            ("[64:ff9b::a9fe:a9fe]", "link-local"),  # NAT64
            ("169.254.170.2", "link-local"),  # ECS task credentials
            ("[fe80::1]", "link-local"),
            ("127.0.0.1", "loopback"),
            ("127.1", "loopback"),
            ("[::1]", "loopback"),
            ("[::ffff:127.0.0.1]", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("[fd00::1]", "private"),
            ("0.0.0.0", "unspecified"),
            ("[::]", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("240.0.0.1", "reserved"),
            ("198.18.0.1", "reserved"),
        ],
    )
    def test_internal_addresses_are_refused_before_any_connection(self, host: str, kind: str) -> None:
        with pytest.raises(OutboundRefused, match=f"is an? {kind} address") as caught:
            Outbound(NOTHING_INTERNAL).request(
                "GET",
                f"http://{host}:2375/containers?token=s3cr3t",
                timeout_seconds=1,
                field="health_check.url",
            )
        assert caught.value.message.startswith("health_check.url: ")
        assert "s3cr3t" not in caught.value.message

    def test_the_message_names_the_address_and_the_rule(self) -> None:
        with pytest.raises(OutboundRefused) as caught:
            Outbound().request(
                "GET", "http://2852039166/latest/meta-data/", timeout_seconds=1, field="health_check.url"
            )
        assert caught.value.message == (
            "health_check.url: 169.254.169.254 is a link-local address, "
            "which the policy does not allow (outbound.allow_link_local)"
        )

    def test_public_addresses_have_no_class(self) -> None:
        for text in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"):
            address = literal_address(text)
            assert address is not None
            assert address_class(address) is None
        assert literal_address("example.com") is None
        assert literal_address("face.be") is None

    def test_with_no_policy_loopback_and_private_pass_and_link_local_does_not(self, server: Server) -> None:
        outbound = Outbound(None)
        assert outbound.request("GET", server.url("/ok"), timeout_seconds=2).status == 200
        outbound.precheck("http://10.0.0.1/")
        with pytest.raises(OutboundRefused, match="link-local"):
            outbound.precheck("http://169.254.169.254/")

    def test_a_policy_allows_classes_one_by_one(self, server: Server) -> None:
        policy = OutboundPolicy(allow_loopback=True)
        assert Outbound(policy).request("GET", server.url(), timeout_seconds=2).body == b"hello"
        with pytest.raises(OutboundRefused, match=r"outbound\.allow_private"):
            Outbound(policy).precheck("http://192.168.0.10/")
        with pytest.raises(OutboundRefused, match=r"outbound\.allow_loopback"):
            Outbound(OutboundPolicy()).request("GET", server.url(), timeout_seconds=2)
        assert server.seen[-1:]
        assert len(server.seen) == 1

    def test_real_dns_names_are_judged_by_what_they_resolve_to(self, server: Server) -> None:
        with pytest.raises(
            OutboundRefused, match=r"localhost resolves to (127\.0\.0\.1|::1), a loopback address"
        ):
            Outbound(NOTHING_INTERNAL).request("GET", server.url(host="localhost"), timeout_seconds=2)
        assert server.seen == []


class TestPinnedAddress:
    def test_one_lookup_the_checked_address_is_used_and_the_host_header_keeps_the_name(
        self, server: Server
    ) -> None:
        answers = [["127.0.0.1"], ["169.254.169.254"]]  # a rebinding resolver: the second answer is IMDS
        asked: list[str] = []

        def resolver(host: str, port: int) -> list[str]:
            asked.append(host)
            return answers[len(asked) - 1]

        outbound = Outbound(LOOPBACK_ONLY, resolver=resolver)
        response = outbound.request("GET", server.url("/pinned", host="service.test"), timeout_seconds=2)
        assert response.status == 200
        assert asked == ["service.test"]
        assert server.seen[0]["headers"]["Host"] == f"service.test:{server.port}"
        with pytest.raises(OutboundRefused, match=r"service\.test resolves to 169\.254\.169\.254"):
            outbound.request("GET", server.url("/pinned", host="service.test"), timeout_seconds=2)
        assert len(server.seen) == 1

    def test_any_refused_address_refuses_the_name(self, server: Server) -> None:
        outbound = Outbound(LOOPBACK_ONLY, resolver=lambda host, port: ["127.0.0.1", "10.0.0.5"])
        with pytest.raises(OutboundRefused, match=r"resolves to 10\.0\.0\.5, a private address"):
            outbound.request("GET", server.url(host="mixed.test"), timeout_seconds=2)
        assert server.seen == []

    def test_tls_checks_the_certificate_for_the_name_not_the_address(self, tmp_path: Path) -> None:
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=pinned.test"
        command += " -addext subjectAltName=DNS:pinned.test"
        subprocess.run(
            [*command.split(), "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
        )
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(cert, key)
        srv = Server(tls=server_tls)
        try:
            client_tls = ssl.create_default_context(cafile=str(cert))
            outbound = Outbound(LOOPBACK_ONLY, resolver=lambda host, port: ["127.0.0.1"], tls=client_tls)
            response = outbound.request(
                "GET", srv.url("/tls", host="pinned.test", scheme="https"), timeout_seconds=5
            )
            assert response.status == 200
            assert response.body == b"hello"
            assert srv.seen[0]["headers"]["Host"] == f"pinned.test:{srv.port}"
            with pytest.raises(OutboundFailed) as caught:  # same address, a name the certificate lacks
                outbound.request("GET", srv.url("/tls", host="other.test", scheme="https"), timeout_seconds=5)
            assert caught.value.reason == "SSLError"
        finally:
            srv.close()


class TestTheExchange:
    def test_redirects_are_not_followed(self, server: Server) -> None:
        response = Outbound().request("GET", server.url("/redirect"), timeout_seconds=2)
        assert response.status == 302
        assert [s["path"] for s in server.seen] == ["/redirect"]

    def test_the_body_is_read_up_to_the_byte_cap(self, server: Server) -> None:
        response = Outbound().request("GET", server.url("/big"), timeout_seconds=5)
        assert response.truncated is True
        assert len(response.body) == MAX_BODY_BYTES
        small = Outbound(max_body_bytes=3).request("GET", server.url("/ok"), timeout_seconds=2)
        assert small.body == b"hel"
        assert small.truncated

    @pytest.mark.parametrize("path", ["/trickle-body", "/trickle-headers"])
    def test_one_deadline_covers_the_whole_request(self, server: Server, path: str) -> None:
        """A server sending a byte every 50 ms never lets a read time out; the deadline still ends it."""
        started = time.monotonic()
        with pytest.raises(OutboundFailed) as caught:
            Outbound().request("GET", server.url(path), timeout_seconds=0.5)
        elapsed = time.monotonic() - started
        assert caught.value.reason == "ReadTimeout"
        assert 0.45 <= elapsed < 1.5

    def test_proxies_and_netrc_from_the_environment_are_ignored(
        self, server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        proxy = Server()
        try:
            monkeypatch.setenv("http_proxy", proxy.url())
            monkeypatch.setenv("HTTP_PROXY", proxy.url())
            monkeypatch.setenv("ALL_PROXY", proxy.url())
            (tmp_path / ".netrc").write_text("machine 127.0.0.1 login user password netrc-secret\n")
            monkeypatch.setenv("HOME", str(tmp_path))
            monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
            assert Outbound().request("GET", server.url("/direct"), timeout_seconds=2).status == 200
            assert proxy.seen == []
            assert [s["path"] for s in server.seen] == ["/direct"]
            assert "Authorization" not in server.seen[0]["headers"]
        finally:
            proxy.close()

    def test_nothing_listening_is_a_connection_error(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with pytest.raises(OutboundFailed) as caught:
            Outbound().request("GET", f"http://127.0.0.1:{port}/", timeout_seconds=1)
        assert caught.value.reason == "ConnectionError"

    def test_host_patterns_are_checked(self, server: Server) -> None:
        policy = OutboundPolicy(allow_loopback=True, url_hosts=["*.example.com"], webhook_hosts=["127.0.0.1"])
        with pytest.raises(
            OutboundRefused, match=r"host 127\.0\.0\.1 is not in the policy's outbound\.url_hosts"
        ):
            Outbound(policy).request("GET", server.url(), timeout_seconds=2)
        assert (
            Outbound(policy)
            .request("POST", server.url("/hook"), timeout_seconds=2, hosts="webhook_hosts")
            .status
            == 204
        )
        with pytest.raises(OutboundRefused, match="webhook_hosts"):
            Outbound(policy).precheck("http://hooks.example.com/x", hosts="webhook_hosts")

    def test_mask_url_hides_user_info_and_query(self) -> None:
        assert (
            mask_url("https://user:pw@hooks.example.com/a/b?token=t#f")
            == "https://***@hooks.example.com/a/b?***"
        )
        assert mask_url("http://h/x") == "http://h/x"


class TestTheCallers:
    def test_a_refused_health_probe_is_a_failed_probe_naming_the_rule(self) -> None:
        probe = HttpProber(Outbound(NOTHING_INTERNAL)).probe(
            "http://169.254.169.254/latest/meta-data/?x=secret"
        )
        assert probe.ok is False
        assert probe.status is None
        assert probe.error is not None
        assert "link-local" in probe.error
        assert "secret" not in probe.error

    def test_webhooks_obey_the_policy_and_name_the_host_only(self, server: Server) -> None:
        sender = WebhookSender(
            Outbound(OutboundPolicy(allow_loopback=True, webhook_hosts=["hooks.example.com"]))
        )
        with pytest.raises(NotificationFailed) as caught:
            sender.post(server.url("/hook?token=abc"), {"event": "x"})
        assert "not in the policy's outbound.webhook_hosts" in caught.value.message
        assert "abc" not in caught.value.message
        assert server.seen == []
        with pytest.raises(NotificationFailed, match=r"^webhook to 127\.0\.0\.1: HTTP 500$"):
            WebhookSender(Outbound()).post(server.url("/fail?token=abc"), {"event": "x"})

    def test_the_operators_own_webhooks_are_trusted(self, server: Server) -> None:
        url = server.url("/mine")
        WebhookSender(Outbound(NOTHING_INTERNAL, trusted_urls=[url])).post(url, {"event": "x"})
        assert server.seen[0]["body"] == b'{"event": "x"}'
        with pytest.raises(NotificationFailed, match="loopback"):
            WebhookSender(Outbound(NOTHING_INTERNAL, trusted_urls=[url])).post(server.url("/other"), {})

    def test_a_refused_traffic_probe_counts_downtime(self, server: Server) -> None:
        with TrafficProbe(server.url(), rate_per_second=50, outbound=Outbound(NOTHING_INTERNAL)) as probe:
            time.sleep(0.2)
        assert probe.report is not None
        assert set(probe.report.statuses) == {"OutboundRefused"}
        assert probe.report.failures == probe.report.requests > 0
        assert server.seen == []
