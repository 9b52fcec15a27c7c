"""Log set-up: one JSON object per line (or readable text), with the request's context in every line.

Operators ship stdout to a log store and search it by request id, route and status, so every
record is stamped (by :class:`RequestContextFilter`, in the thread that logs it) with the fields
of the request being served, which :mod:`app.api.middleware` keeps in a context variable.

uvicorn's own loggers go through the same handler. Its access line is rewritten to carry the
route *template* (``/dicomFile/{name}``) instead of the raw path: stored names embed the client's
file name, which may carry a patient's name, and no patient data is logged at INFO or above.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from app.config import Settings

REQUEST_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "error")
#: Fields of an audit event's log line (``"audit": true``); never names, UIDs or queries (patient data).
AUDIT_FIELDS = ("audit", "action", "outcome", "reason", "actor", "actor_type")


@dataclass
class RequestContext:
    """What is known about the request being served; filled in as it progresses."""

    request_id: str
    method: str
    scope: MutableMapping[str, Any] = field(repr=False)
    started: float = field(default_factory=time.perf_counter)
    status: int | None = None
    error: str | None = None

    @property
    def route(self) -> str | None:
        """The matched route's template (``/dicomFile/{name}``), never the raw path; None until routed."""
        route = self.scope.get("route")
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else None

    @property
    def client(self) -> str | None:
        """The client's address as the server sees it (uvicorn applies trusted proxy headers first)."""
        client = self.scope.get("client")
        return str(client[0]) if client else None

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)


current_request: ContextVar[RequestContext | None] = ContextVar("lightbox_request", default=None)


def error_kind(error: BaseException) -> str:
    """A bounded label for an error: its class in snake case (``InvalidDicom`` -> ``invalid_dicom``)."""
    name = type(error).__name__
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


def status_kind(status: int) -> str:
    """``404`` -> ``not_found``: HTTP's reason phrase as a label."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return f"status_{status}"


def note_error(kind: str) -> None:
    """Record why the current request failed: a kind (class name), never a message that may hold data."""
    context = current_request.get()
    if context is not None:
        context.error = kind


class RequestContextFilter(logging.Filter):
    """Copy the current request's fields onto each record, and strip raw paths from access lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_request.get()
        if context is not None:
            record.request_id = context.request_id
            record.method = context.method
            record.route = context.route
            record.status = context.status
            record.error = context.error
            if record.name == "uvicorn.access":
                record.duration_ms = context.elapsed_ms()
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, _raw_path, _http_version, status = record.args
            record.client = client
            record.status = status
            record.method = method
            route = getattr(record, "route", None) or "-"
            record.msg, record.args = "%s %s %s", (method, route, status)
        return True


def _iso_time(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the request fields when known."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name in (*REQUEST_FIELDS, "client", *AUDIT_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: ``time level logger [request id] message key=value...``."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        line = f"{_iso_time(record.created)} {record.levelname:<7} {record.name}"
        if request_id:
            line += f" [{request_id}]"
        line += f" {record.getMessage()}"
        extras = [
            f"{name}={getattr(record, name)}"
            for name in ("duration_ms", "error")
            if getattr(record, name, None) is not None
        ]
        if extras:
            line += " " + " ".join(extras)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def resolve_format(settings: Settings, stream: Any = None) -> Literal["json", "text"]:
    """``auto`` means JSON unless a person is watching stdout (a terminal)."""
    if settings.log_format != "auto":
        return settings.log_format
    stream = sys.stdout if stream is None else stream
    return "text" if hasattr(stream, "isatty") and stream.isatty() else "json"


def log_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict, also handed to uvicorn (``log_config=``) for every worker."""
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestContextFilter}},
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": resolve_format(settings),
                "filters": ["request"],
            }
        },
        "loggers": {
            # uvicorn's loggers lose their own handlers and propagate to ours.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": True},
            # pydicom's warnings can quote element values (patient data): only shown when debugging.
            "pydicom": {"handlers": [], "level": "DEBUG" if level == "DEBUG" else "ERROR", "propagate": True},
        },
        "root": {"handlers": ["stdout"], "level": level},
    }
