"""Structured log lines: ``event=request method=Embed code=OK ...`` or the same fields as one JSON object."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

LOGGER_NAME = "audioembed_server"
_format = "kv"  # set once by configure(); "kv" or "json"


def configure(*, log_format: str = "kv", level: int | str = logging.INFO) -> None:
    """Send the server's events to stderr, one line each, in ``log_format`` ("kv" or "json")."""
    global _format
    _format = log_format
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(h, "_audioembed", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler._audioembed = True  # type: ignore[attr-defined]  # so configure() is idempotent
        logger.addHandler(handler)
        logger.propagate = False


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def format_event(event: str, fields: dict[str, Any]) -> str:
    """Render one event as a ``key=value`` line or a JSON object, per :func:`configure`."""
    if _format == "json":
        return json.dumps({"event": event, **fields}, default=str)
    return " ".join([f"event={event}", *(f"{k}={_value(v)}" for k, v in fields.items())])


def log_event(event: str, *, level: int = logging.INFO, exc_info: bool = False, **fields: Any) -> None:
    """Log one structured event on the server's logger."""
    logger = logging.getLogger(LOGGER_NAME)
    if logger.isEnabledFor(level):
        logger.log(level, format_event(event, fields), exc_info=exc_info)
