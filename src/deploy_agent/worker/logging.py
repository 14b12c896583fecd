"""Log records as JSON lines (for machines) or plain text (for a terminal), secrets redacted.

Every record carries the deployment id and stage when the code that logged knew them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

# Registry tokens, AWS secret keys and passwords in URLs must never reach a log line.
_REDACTIONS = [
    (re.compile(r"(?i)(password|secret|token|authorization)([\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1\2***"),
    (re.compile(r"(redis|rediss|amqp)://([^:/@\s]*):[^@\s]+@"), r"\1://\2:***@"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "AKIA***"),
]


def redact(text: str) -> str:
    """Return ``text`` with anything that looks like a credential masked."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            "deployment_id": getattr(record, "deployment_id", None),
            "stage": getattr(record, "stage", None),
        }
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps({k: v for k, v in payload.items() if v is not None})


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        deployment = getattr(record, "deployment_id", None)
        stage = getattr(record, "stage", None)
        where = f" [{deployment}{'/' + stage if stage else ''}]" if deployment else ""
        stamp = self.formatTime(record, "%H:%M:%S")
        line = f"{stamp} {record.levelname:<7}{where} {redact(record.getMessage())}"
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
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
