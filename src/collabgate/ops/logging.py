"""NDJSON logs on stdout. Tokens and document content never reach a log line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

#: Keys whose values are dropped from every log event, whoever logs them.
REDACTED_KEYS = frozenset(
    {
        "token",
        "authorization",
        "jwt",
        "update",
        "state",
        "snapshot",
        "content",
        "password",
        "secret",
    }
)


#: A token in a URL's query string, as servers log handshake and request lines.
_TOKEN_IN_TEXT = re.compile(r"((?:access_)?token=)[^&\s\"']+", re.IGNORECASE)


def redact_text(text: str) -> str:
    return _TOKEN_IN_TEXT.sub(r"\1[redacted]", text)


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key.lower() in REDACTED_KEYS:
            event_dict[key] = "[redacted]"
        elif isinstance(value, str) and "token=" in value.lower():
            event_dict[key] = redact_text(value)
    return event_dict


def _dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure_logging(level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the standard library (uvicorn) go through the same JSON output.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_StdlibJsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.getLogger("uvicorn.access").disabled = True
    logging.captureWarnings(True)


class _StdlibJsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _dumps(
            {
                "event": redact_text(record.getMessage()),
                "level": record.levelname.lower(),
                "logger": record.name,
                "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            }
        )
