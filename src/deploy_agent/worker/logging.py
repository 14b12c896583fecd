"""Log records as JSON lines (for machines) or plain text (for a terminal), secrets redacted.

Every record carries the deployment id and stage when the code that logged knew them; other
scalar ``extra`` fields are written too (JSON keys, or ``key=value`` in text).

What is masked (``redact``), wherever it appears in a message, a traceback or a field:

* the value of any key named like a secret (``*KEY*``, ``*SECRET*``, ``*TOKEN*``, ``*PASS*``,
  ``*CREDENTIAL*``, ``Authorization``, ``X-Registry-Auth``; any case) in ``key=value``,
  ``key: value``, ``"key": "value"`` and ``'key': 'value'`` forms; a field whose name is such a key;
* ``Authorization: Bearer <token>`` as a whole (the scheme and the token), and any ``Bearer <token>``;
* AWS access key ids (``AKIA...``, ``ASIA...``);
* the password of a URL (``https://user:pw@host`` becomes ``https://user:***@host``);
* webhook URLs (a host or path with "hook" in it): only the scheme and host are kept.

The text formatter also escapes control characters (newlines, carriage returns, ANSI escapes) in
the message and in every field, so no value can forge a log line or repaint a terminal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

MASK = "***"

#: a key whose value is a secret: matched anywhere in the key's name, any case
_SECRET_NAMES = r"(?:key|secret|token|pass|credential|authorization|registry-auth)"  # noqa: S105
SECRET_KEY = re.compile(rf"(?i){_SECRET_NAMES}|^auth$")

_VALUE = r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s"',;}\]&]+)"""
# Authorization headers first: their value is a scheme and a token, both masked.
_AUTHORIZATION = re.compile(
    r"""(?i)\b((?:proxy-)?authorization|x-registry-auth)(["']?\s*[:=]\s*)"""
    r"""(?:(["'])(?:(?!\3).)*\3|(?:(?:bearer|basic|token|digest|aws4-hmac-sha256)\s+)?[^\s"',;}]+)"""
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
_KEYED = re.compile(rf"""(?i)(?<![\w.-])([\w.-]*{_SECRET_NAMES}[\w.-]*)(["']?)(\s*[:=]\s*)({_VALUE})""")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^:/@\s]*):[^@\s]+@")
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_URL = re.compile(r"""(?i)\b(https?://)([^/\s?#"'<>]+)([/?#][^\s"'<>]*)?""")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x80-\x9f]")
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _mask_keyed(match: re.Match[str]) -> str:
    key, quote, separator, value = match.groups()
    masked = f"{value[0]}{MASK}{value[0]}" if value[:1] in ("'", '"') else MASK
    return f"{key}{quote}{separator}{masked}"


def _mask_authorization(match: re.Match[str]) -> str:
    quoted = match.group(3)
    return f"{match.group(1)}{match.group(2)}{quoted + MASK + quoted if quoted else MASK}"


def _mask_webhook(match: re.Match[str]) -> str:
    scheme, host, rest = match.group(1), match.group(2), match.group(3) or ""
    if "hook" not in host.lower() and "hook" not in rest.lower():
        return match.group(0)
    trailing = rest[len(rest.rstrip(".,:;)")) :]  # sentence punctuation after the URL stays
    return f"{scheme}{host}/{MASK}{trailing}"


def redact(text: str) -> str:
    """Return ``text`` with anything that looks like a credential masked (see the module doc)."""
    text = _AUTHORIZATION.sub(_mask_authorization, text)
    text = _BEARER.sub(f"Bearer {MASK}", text)
    text = _URL_PASSWORD.sub(rf"\1\2:{MASK}@", text)
    text = _KEYED.sub(_mask_keyed, text)
    text = _AWS_KEY_ID.sub(rf"\1{MASK}", text)
    return _URL.sub(_mask_webhook, text)


def webhook_host(url: str) -> str:
    """Return what a log may show of a webhook URL: its scheme and host (no path, query or userinfo)."""
    match = re.match(r"(?i)^([a-z][a-z0-9+.-]*://)(?:[^@/?#]*@)?([^/?#]*)", url.strip())
    return f"{match.group(1)}{match.group(2)}" if match else MASK


def sanitize(text: str) -> str:
    """Return ``text`` on one line: ANSI escapes removed, other control characters escaped."""
    text = _ANSI.sub("", text)
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def log_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Return the record's scalar ``extra`` fields, each masked when its name is a secret's.

    Containers (dicts, lists) are left out: Celery passes the whole message as ``extra={"data": ...}``.
    """
    fields: dict[str, Any] = {}
    for name, value in vars(record).items():
        if name in _STANDARD_ATTRIBUTES or name.startswith("_"):
            continue
        if value is not None and not isinstance(value, str | int | float | bool):
            continue
        if value is not None and SECRET_KEY.search(name):
            value = MASK
        elif isinstance(value, str):
            value = redact(value)
        fields[name] = value
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = log_fields(record)
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            "deployment_id": fields.pop("deployment_id", None),
            "stage": fields.pop("stage", None),
        }
        for name, value in fields.items():
            payload.setdefault(name, value)
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps({k: v for k, v in payload.items() if v is not None})


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = log_fields(record)
        deployment = fields.pop("deployment_id", None)
        stage = fields.pop("stage", None)
        where = ""
        if deployment:
            where = f" [{sanitize(str(deployment))}{'/' + sanitize(str(stage)) if stage else ''}]"
        stamp = self.formatTime(record, "%H:%M:%S")
        line = f"{stamp} {record.levelname:<7}{where} {sanitize(redact(record.getMessage()))}"
        extras = " ".join(f"{sanitize(k)}={sanitize(str(v))}" for k, v in fields.items() if v is not None)
        if extras:
            line += f" {extras}"
        if record.exc_info:
            # one traceback line per log line, each indented: none can pass for a record of its own
            trace = redact(self.formatException(record.exc_info))
            line += "".join(f"\n    {sanitize(part)}" for part in trace.splitlines())
        return line


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Send logs to stderr as JSON lines, or as text when ``fmt`` is text (or auto on a terminal)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "urllib3", "docker", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
