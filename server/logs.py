"""Logging set-up: plain text for people, or one JSON object per line for log pipelines.

Every record logged while an RPC runs carries that RPC's request id: the caller's ``x-request-id``
metadata when it sends a sane one, else a fresh random id; the server returns it in the trailing
metadata so the caller can quote it. Log lines never name users: the code logs no user or product
ids, and the access line (DEBUG) holds only the method, status code, duration and request id.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from server.interception import observe_single_answer

LOG_FORMATS = ("text", "json")
REQUEST_ID_KEY = "x-request-id"
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"

_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
access_log = logging.getLogger("pricebandit.access")

# The attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_tag",
}


class RequestIdFilter(logging.Filter):
    """Copies the current request id onto each record (``request_id``, and ``request_tag`` for text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = request_id.get()
        record.request_id = current
        record.request_tag = f" [{current}]" if current else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and value not in ("", None):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def parse_log_format(text: str) -> str:
    if text not in LOG_FORMATS:
        raise ValueError(f"log format {text!r} is not one of {', '.join(LOG_FORMATS)}")
    return text


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send the root logger's records to stderr in the chosen format (replacing earlier handlers)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if parse_log_format(log_format) == "json"
                         else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _incoming_request_id(metadata: Any) -> str:
    """The caller's id if it sent a sane one, else a new one: this process's random prefix and a
    counter (unique without a system call per RPC)."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and REQUEST_ID_PATTERN.fullmatch(value):
            return value
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


class RequestIdInterceptor(grpc.ServerInterceptor):
    """Binds a request id to every RPC that answers once, returns it to the caller in the trailing
    metadata, and writes one access line per RPC at DEBUG."""

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        method, metadata = details.method, details.invocation_metadata

        def bind(context: grpc.ServicerContext) -> tuple[contextvars.Token[str], float]:
            current = _incoming_request_id(metadata)
            context.set_trailing_metadata(((REQUEST_ID_KEY, current),))
            start = time.perf_counter() if access_log.isEnabledFor(logging.DEBUG) else 0.0
            return request_id.set(current), start

        def unbind(_context: grpc.ServicerContext, state: tuple[contextvars.Token[str], float],
                   code: str) -> None:
            token, start = state
            if start:
                milliseconds = round((time.perf_counter() - start) * 1e3, 3)
                access_log.debug("%s %s %.3f ms", method, code, milliseconds, extra={
                    "rpc_method": method, "code": code, "duration_ms": milliseconds})
            request_id.reset(token)

        return observe_single_answer(continuation(details), bind, unbind)
