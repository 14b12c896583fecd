"""Log redaction and formatting: each masking rule, structured fields, and no forged text lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from deploy_agent.worker.logging import JsonFormatter, TextFormatter, redact, sanitize, webhook_host

SECRET = "s3cr3t-Planted-value"


class TestMaskedByKeyName:
    @pytest.mark.parametrize(
        "key",
        [
            "AWS_SECRET_ACCESS_KEY",
            "api_key",
            "apiKey",
            "DB_PASSWORD",
            "DB_PASSWD",
            "db_pass",
            "GITHUB_TOKEN",
            "client_secret",
            "x-api-key",
            "signing.key",
            "aws_credentials",
        ],
    )
    @pytest.mark.parametrize("form", ["{k}={v}", "{k}: {v}", '"{k}": "{v}"', "'{k}': '{v}'", '{k}="{v}"'])
    def test_secret_named_keys_lose_their_values(self, key: str, form: str) -> None:
        """key=value, key: value, JSON and Python-repr pairs: the value goes, the key stays."""
        text = f"before {form.format(k=key, v=SECRET)} after"
        masked = redact(text)
        assert SECRET not in masked
        assert key in masked
        assert masked.startswith("before ")
        assert masked.endswith(" after")

    def test_quoted_values_with_spaces_are_masked_whole(self) -> None:
        masked = redact('{"password": "correct horse battery staple", "user": "bob"}')
        assert masked == '{"password": "***", "user": "bob"}'

    def test_other_keys_are_left_alone(self) -> None:
        text = "deployment_id=dep-1 cluster=prod image=repo@sha256:abc desired=3"
        assert redact(text) == text

    def test_key_name_match_ignores_case(self) -> None:
        assert redact(f"MySecretThing={SECRET}") == "MySecretThing=***"
        assert redact(f"tOkEn={SECRET}") == "tOkEn=***"


class TestCredentialShapes:
    @pytest.mark.parametrize(
        "text",
        [
            f"Authorization: Bearer {SECRET}",
            f"authorization=Bearer {SECRET}",
            f"{{'Authorization': 'Bearer {SECRET}'}}",
            f'"Authorization": "Basic {SECRET}"',
        ],
    )
    def test_authorization_is_masked_whole(self, text: str) -> None:
        """The scheme and the token both go: nothing of the header's value is left."""
        masked = redact(text)
        assert SECRET not in masked
        assert "Bearer" not in masked
        assert "Basic" not in masked
        assert "***" in masked

    def test_a_lone_bearer_token_is_masked(self) -> None:
        assert redact(f"sent Bearer {SECRET} to the registry") == "sent Bearer *** to the registry"

    def test_registry_auth_header(self) -> None:
        masked = redact(f"X-Registry-Auth: eyJ1c2VybmFtZSI6IkFXUyJ9{SECRET}")
        assert masked == "X-Registry-Auth: ***"

    @pytest.mark.parametrize("prefix", ["AKIA", "ASIA"])
    def test_aws_access_key_ids(self, prefix: str) -> None:
        masked = redact(f"using {prefix}ABCDEFGHIJKLMNOP for the call")
        assert masked == f"using {prefix}*** for the call"

    @pytest.mark.parametrize("scheme", ["https", "http", "redis", "rediss", "amqp", "git+https"])
    def test_passwords_in_urls(self, scheme: str) -> None:
        masked = redact(f"cloning {scheme}://deployer:{SECRET}@git.example.com/team/app.git now")
        assert masked == f"cloning {scheme}://deployer:***@git.example.com/team/app.git now"

    @pytest.mark.parametrize(
        ("url", "host"),
        [
            ("https://hooks.slack.com/services/T0001/B0002/XyZ123abc", "https://hooks.slack.com"),
            ("https://discord.com/api/webhooks/123/abcDEF", "https://discord.com"),
            ("http://127.0.0.1:9000/webhook?sig=abc", "http://127.0.0.1:9000"),
        ],
    )
    def test_webhook_urls_keep_only_the_host(self, url: str, host: str) -> None:
        masked = redact(f"webhook {url}: HTTP 500")
        assert masked == f"webhook {host}/***: HTTP 500"
        assert webhook_host(url) == host

    def test_other_urls_stay_readable(self) -> None:
        text = "health check http://127.0.0.1:8080/health answered 503"
        assert redact(text) == text

    def test_webhook_host_drops_userinfo(self) -> None:
        assert webhook_host("https://user:pw@hooks.example.com/x/y") == "https://hooks.example.com"


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    """A logger writing to two streams: one through each formatter."""
    logger = logging.getLogger(f"test.logging.{id(object())}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    text, js = io.StringIO(), io.StringIO()
    for stream, formatter in ((text, TextFormatter()), (js, JsonFormatter())):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    yield logger, text, js
    logger.handlers.clear()


class TestFormatters:
    def test_structured_fields_are_masked_by_name(
        self, capture: tuple[logging.Logger, io.StringIO, io.StringIO]
    ) -> None:
        """An ``extra`` field named like a secret is written as ***; others are written as given."""
        logger, text, js = capture
        logger.info("pushed", extra={"registry_token": SECRET, "repository": "app", "deployment_id": "d1"})
        record = json.loads(js.getvalue())
        assert record["registry_token"] == "***"
        assert record["repository"] == "app"
        assert record["deployment_id"] == "d1"
        assert SECRET not in text.getvalue()
        assert "registry_token=***" in text.getvalue()
        assert "repository=app" in text.getvalue()

    def test_container_fields_are_left_out(
        self, capture: tuple[logging.Logger, io.StringIO, io.StringIO]
    ) -> None:
        """Celery logs the whole message as ``extra={"data": ...}``: it is never written."""
        logger, text, js = capture
        logger.info("Task received", extra={"data": {"kwargs": {"request": {"env": SECRET}}}})
        assert SECRET not in js.getvalue()
        assert SECRET not in text.getvalue()

    def test_messages_and_tracebacks_are_redacted(
        self, capture: tuple[logging.Logger, io.StringIO, io.StringIO]
    ) -> None:
        logger, text, js = capture
        try:
            raise RuntimeError(f"push failed: password={SECRET}")
        except RuntimeError:
            logger.exception("login with Authorization: Bearer %s", SECRET)
        assert SECRET not in text.getvalue()
        assert SECRET not in js.getvalue()
        assert "password=***" in json.loads(js.getvalue())["exc"]

    def test_text_lines_cannot_be_forged(
        self, capture: tuple[logging.Logger, io.StringIO, io.StringIO]
    ) -> None:
        """Newlines and ANSI escapes in a message, a field name or value never start a new line."""
        logger, text, js = capture
        forged = "\n00:00:00 ERROR   [dep-x] rollback started\r\x1b[2J\x1b[31m"
        logger.warning("value %s", forged, extra={"deployment_id": "d1\nfake", "field\nname": "v\x1b[0m\n"})
        try:
            raise ValueError("line one" + forged)
        except ValueError:
            logger.exception("boom")
        lines = text.getvalue().splitlines()
        records = [line for line in lines if not line.startswith("    ")]
        assert len(records) == 2, lines
        assert all("\x1b" not in line and "\r" not in line for line in lines)
        assert "\\n00:00:00 ERROR" in records[0]
        assert "[d1\\nfake]" in records[0]
        assert "field\\nname=v\\n" in records[0]
        # JSON lines are one record per line as well
        assert [json.loads(line)["level"] for line in js.getvalue().splitlines()] == ["warning", "error"]

    def test_sanitize_keeps_printable_text(self) -> None:
        assert sanitize("héllo wörld: 100% [ok]") == "héllo wörld: 100% [ok]"
        assert sanitize("a\tb\x00c\x1b[1md") == "a\\tb\\x00cd"
