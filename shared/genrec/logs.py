"""Structured logs: one JSON object per line, carrying the service name and the request id.

The request id is the caller's ``x-request-id`` (or a fresh one), set by every genrec HTTP
app for the duration of a request, so one id ties a request's lines together across
services (event-capture passes it on in the events it publishes).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TextIO

from genrec.config import Settings, get_settings
from genrec.tracing import current_trace_id

REQUEST_ID: ContextVar[str | None] = ContextVar("genrec_request_id", default=None)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = REQUEST_ID.get()
        record.trace_id = current_trace_id()
        return True


def configure_logging(service: str, s: Settings | None = None, stream: TextIO | None = None) -> None:
    """Route every logger of this process to one handler in the configured format."""
    s = s or get_settings()
    handler = logging.StreamHandler(stream or sys.stderr)
    if s.observability.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(request_id)s %(trace_id)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        ))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(service)s %(name)s: %(message)s"))
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(s.observability.log_level)
    # One INFO line per outgoing HTTP call (the bridge makes thousands a second) is noise.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
