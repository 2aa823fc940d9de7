"""structlog as one JSON object per line (CONTRACT §8), or a console renderer for humans.

``correlation_id`` and other per-event context travel in contextvars, so any log line written while
an event is being handled carries them without threading them through every call.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog

from domain.redaction import redact

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


def _level_and_severity(_: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    level = {"warn": "WARNING", "exception": "ERROR", "critical": "ERROR"}.get(method, method.upper())
    event_dict["level"] = level
    event_dict["severity"] = level
    event_dict.setdefault("correlation_id", None)
    return event_dict


def _redact_strings(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in event_dict.items():
        if isinstance(value, str) and "://" in value:
            event_dict[key] = redact(value)
    return event_dict


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode("utf-8")


def configure_logging(*, level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Set up structlog for the whole process; safe to call again (tests, CLI sub-commands)."""
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _level_and_severity,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            _redact_strings,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stdout),
        cache_logger_on_first_use=True,  # an uncached proxy costs microseconds per call on the hot path
    )
