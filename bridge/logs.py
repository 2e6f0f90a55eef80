"""Logging: human-readable or JSON lines, a request id on each, and nothing secret.

Authlib's server and client log tokens and PKCE verifiers at DEBUG; those
records are dropped before any handler sees them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

#: Authlib loggers whose DEBUG lines carry tokens, codes or verifiers.
NOISY_LOGGERS = (
    "authlib",
    "authlib.integrations.base_client.sync_app",
    "authlib.integrations.base_client.async_app",
    "authlib.oauth2.rfc6749.grants.authorization_code",
    "authlib.oauth2.rfc6749.grants.implicit",
    "authlib.oauth2.rfc6749.authorization_server",
    "authlib.oidc.core.grants.code",
    "authlib.oidc.core.grants.implicit",
    "authlib.oidc.core.grants.hybrid",
)


#: Libraries whose INFO lines repeat every HTTP call; the metrics time those calls instead.
CHATTY_LOGGERS = ("httpx", "httpcore")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(text: str) -> str:
    """No forged log lines: control characters (an IdP's text can carry them) are escaped."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _field(value: Any) -> str:
    text = _one_line(str(value))
    return json.dumps(text) if not text or any(c in text for c in ' "=') else text


class DropDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            data["error_type"] = record.exc_info[0].__name__
            # Python's traceback: code lines and the message, never local values.
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def _indented(text: str) -> str:
    """A traceback under its record: every line indented, so none can pass for a record."""
    return "\n".join("    " + _one_line(line) for line in text.rstrip("\n").split("\n"))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = _one_line(self.formatMessage(record))
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += " " + " ".join(f"{k}={_field(v)}" for k, v in fields.items())
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + _indented(self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + _indented(self.formatStack(record.stack_info))
        return line


def silence_secret_loggers() -> None:
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropDebug) for f in logger.filters):
            logger.addFilter(DropDebug())


def setup_logging(fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    silence_secret_loggers()
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
