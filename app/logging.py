"""Log set-up: one JSON object per line (or readable text), with the request's context in every line.

Operators ship stdout to a log store and search it by request id, route and status, so every
record is stamped (by :class:`RequestContextFilter`, in the thread that logs it) with the fields
of the request being served, which :mod:`app.api.middleware` keeps in a context variable.

uvicorn's own loggers go through the same handler. Its access line is rewritten to carry the
route *template* (``/dicomFile/{name}``) instead of the raw path: stored names embed the client's
file name, which may carry a patient's name, and no patient data is logged at INFO or above.

Credentials never reach a log line: access lines carry no query string, and as defence in depth
:class:`RedactSecrets` masks ``token=`` style parameters, ``Authorization``/``Cookie`` header
values, bearer tokens and API keys in every message and traceback, whichever library logged them.

:func:`configure_logging` is called by the app built from the environment
(:func:`app.main.create_app`), so the format holds however the service is started, a bare
``uvicorn app.main:app`` included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.config
import os
import re
import sys
import time
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

import orjson

from app.config import Settings
from app.tracing import current_trace_id

REQUEST_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "error", "trace_id")
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


def request_fields(context: RequestContext) -> dict[str, Any]:
    """The request's fields every line logged while serving it carries (see :data:`REQUEST_FIELDS`)."""
    return {
        "request_id": context.request_id,
        "method": context.method,
        "route": context.route,
        "status": context.status,
        "error": context.error,
        "trace_id": current_trace_id(),  # None (left out) unless traced: see app.tracing
    }


def client_address(scope: MutableMapping[str, Any]) -> str:
    """``host:port`` of the peer as the server reports it (uvicorn's own access line's form)."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""


class RequestContextFilter(logging.Filter):
    """Copy the current request's fields onto each record, and strip raw paths from access lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_request.get()
        if context is not None:
            record.__dict__.update(request_fields(context))
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


REDACTED = "[redacted]"
_SECRET_NAME = r"[\w.-]*(?:token|key|password|passwd|secret|signature)"
_HEADER_NAME = r"(?:proxy-)?(?:authorization|cookie|set-cookie|x-api-key)"
SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # ``?token=...``, ``&api_key=...``, ``password='...'`` in query strings, reprs and key=value text
    (re.compile(rf"(?i)((?<![\w-]){_SECRET_NAME}=\s*(?-i:b)?['\"]?)[^&\s'\"#;,)\]}}]*"), rf"\1{REDACTED}"),
    # ``"access_token": "..."`` in JSON and dict reprs
    (re.compile(rf"(?i)(['\"]{_SECRET_NAME}['\"]\s*:\s*(?-i:b)?['\"]?)[^'\"\s,}}]*"), rf"\1{REDACTED}"),
    # header values: ``Authorization: ...``, ``(b'authorization', b'...')``, ``{'cookie': '...'}``
    (
        re.compile(rf"(?i)({_HEADER_NAME}(?:['\"]\s*,|['\"]?\s*[:=])\s*(?-i:b)?['\"]?)[^'\"\r\n\\]*"),
        rf"\1{REDACTED}",
    ),
    # a password in a URL's user information (RFC 3986 3.2.1), e.g. a database URL in an error
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@]*:)[^@\s/]+@"), rf"\1{REDACTED}@"),
    # credentials on their own: RFC 6750 bearer tokens, RFC 7617 basic credentials, our API keys
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/-]+=*"), rf"\1 {REDACTED}"),
    (re.compile(r"\b(Basic)\s+[A-Za-z0-9+/]{8,}=*"), rf"\1 {REDACTED}"),
    (re.compile(r"\blbx_[A-Za-z0-9]+_[A-Za-z0-9_-]+"), f"lbx_{REDACTED}"),
)


# one cheap test first: most lines (every access line) hold none of the words the patterns need
_SECRET_WORDS = ("token", "key", "passw", "secret", "signature", "authori", "cookie", "bearer", "basic", "lbx_", "://")
_MAYBE_SECRET = re.compile("(?i)" + "|".join(map(re.escape, _SECRET_WORDS)))


def _may_hold_secret(text: str) -> bool:
    """Whether ``text`` holds one of the words, in any case. ASCII text is lowered and searched with
    ``in`` (~1 us for an access line; the case-insensitive regex took ~7 us, twice per request); other
    text takes the regex, whose case folding also matches e.g. U+212A KELVIN SIGN to "k"."""
    if text.isascii():
        lowered = text.lower()
        for word in _SECRET_WORDS:  # noqa: SIM110 (a loop: any()'s generator frame cost more than the searches)
            if word in lowered:
                return True
        return False
    return _MAYBE_SECRET.search(text) is not None


def redact(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``[redacted]``."""
    if not _may_hold_secret(text):
        return text
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Mask credentials in the message, the traceback and the stack of every record.

    The message is rendered with its arguments first (a token may be an argument), and the
    traceback is rendered into ``exc_text``, which formatters use instead of rendering it again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as it would have
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_text:
        return record.exc_text
    return formatter.formatException(record.exc_info) if record.exc_info else None


_last_second: tuple[int, str] = (-1, "")


def _iso_time(created: float) -> str:
    """``2026-12-02T10:31:56.556Z``; the seconds part is formatted once per second (every line has one)."""
    global _last_second
    second = int(created)
    if _last_second[0] != second:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_last_second[1]}.{int(created % 1 * 1000):03d}Z"


#: Optional fields of a line, in the order they appear after ``pid``.
LINE_FIELDS = (*REQUEST_FIELDS, "client", *AUDIT_FIELDS)
# made once (json.dumps with options builds one per call); compact, as orjson writes
_JSON = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":"))


def _encode(entry: dict[str, Any]) -> str:
    """orjson (a line is written per request, ~10x faster); the json module for what orjson refuses
    (integers beyond 64 bits, lone surrogates), so a line is never lost to its encoding."""
    try:
        return orjson.dumps(entry, default=str).decode()
    except orjson.JSONEncodeError:
        return _JSON.encode(entry)


def json_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    pid: int | None,
    fields: Mapping[str, Any],
    exception: str | None = None,
    stack: str | None = None,
) -> str:
    """One JSON log line (without its newline); the formatter and :class:`HotLine` both write through it."""
    entry: dict[str, Any] = {
        "time": _iso_time(created),
        "level": level,
        "logger": logger,
        "message": message,
        "pid": pid,
    }
    for name in LINE_FIELDS:
        value = fields.get(name)
        if value is not None:
            entry[name] = value
    if exception:
        entry["exception"] = exception
    if stack:
        entry["stack"] = stack
    return _encode(entry)


def text_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    fields: Mapping[str, Any],
    exception: str | None = None,
    stack: str | None = None,
) -> str:
    """One readable log line: ``time level logger [request id] message key=value...``."""
    request_id = fields.get("request_id")
    line = f"{_iso_time(created)} {level.upper():<7} {logger}"
    if request_id:
        line += f" [{request_id}]"
    line += f" {message}"
    extras = [f"{name}={fields[name]}" for name in ("duration_ms", "error") if fields.get(name) is not None]
    if extras:
        line += " " + " ".join(extras)
    if exception:
        line += "\n" + exception
    if stack:
        line += "\n" + stack
    return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the request fields when known."""

    def format(self, record: logging.LogRecord) -> str:
        return json_line(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            record.process,
            record.__dict__,
            _exception_text(self, record),
            record.stack_info,
        )


class TextFormatter(logging.Formatter):
    """For a person at a terminal: ``time level logger [request id] message key=value...``."""

    def format(self, record: logging.LogRecord) -> str:
        return text_line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            record.__dict__,
            _exception_text(self, record),
            record.stack_info,
        )


class ServiceHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler :func:`log_config` installs (stdout); :class:`HotLine` writes to it directly.

    A hot line written on a running event loop is flushed at the end of that loop turn, once for every
    line of the turn (under load, many requests' lines in one ``write`` system call instead of one
    each); anywhere else, and for every record through :mod:`logging`, at once. A line waits at most
    one loop turn, in order with every other line (they share the stream's buffer).
    """

    _flush_scheduled = False

    def write_line(self, line: str) -> None:
        with self.lock or contextlib.nullcontext():
            self.stream.write(line + self.terminator)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.stream.flush()
                return
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush_turn)

    def _flush_turn(self) -> None:
        with self.lock or contextlib.nullcontext():
            self._flush_scheduled = False
            try:
                self.stream.flush()
            except Exception:  # as StreamHandler.emit: reported by logging, never raised into the loop
                self.handleError(logging.LogRecord("lightbox", logging.ERROR, "", 0, "log flush failed", (), None))


class HotLine:
    """A line written once or twice per request (the access line, the audit line), at ``info``.

    Through :mod:`logging` each line costs a ``LogRecord``, two filters, a formatter and the
    handler's dispatch: ~16 us, a fifth of a cached tag lookup's CPU. When the line would reach only
    the service's own handler (:class:`ServiceHandler` on the root logger, nothing else on the way:
    the configuration :func:`log_config` installs), it is built by the same :func:`json_line` /
    :func:`text_line` and written under the handler's lock, with the same request fields and the
    same redaction of the message, so the bytes are those a record would have produced. Any other
    configuration (a test's capture handler, a library's extra handler, a filter) gets a real record
    through ``logger``'s normal path.

    ``level_logger`` decides whether the line is written (its level); ``name`` is the ``logger``
    field; with ``to_root`` the record of the slow path is handed to the root logger (the access
    line's logger does not propagate, so that uvicorn writes no line of its own).
    """

    def __init__(self, name: str, *, to_root: bool = False) -> None:
        self.name = name
        self.logger = logging.getLogger(name)
        self.to_root = to_root

    def _service_handler(self) -> ServiceHandler | None:
        """The service's handler when it is the only place the line would go, else None."""
        root = logging.root
        if len(root.handlers) != 1 or root.filters:
            return None
        handler = root.handlers[0]
        if type(handler) is not ServiceHandler or handler.level > logging.INFO:
            return None
        filters = handler.filters
        if len(filters) != 2 or type(filters[0]) is not RequestContextFilter or type(filters[1]) is not RedactSecrets:
            return None
        if not self.to_root:
            logger: logging.Logger | None = self.logger
            while logger is not None and logger is not root:
                if logger.handlers or logger.filters or not logger.propagate:
                    return None
                parent = logger.parent
                logger = parent if isinstance(parent, logging.Logger) else None
        return handler

    def info(self, message: str, fields: dict[str, Any]) -> None:
        """Write ``message`` with ``fields`` (and the current request's) if ``info`` is enabled."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        handler = self._service_handler()
        formatter = handler.formatter if handler is not None else None
        if handler is None or type(formatter) not in (JsonFormatter, TextFormatter):
            self._through_logging(message, fields)
            return
        context = current_request.get()
        if context is not None:
            fields = {**request_fields(context), **fields}
        message = redact(message)
        created = time.time()
        if type(formatter) is JsonFormatter:
            line = json_line(created, "info", self.name, message, os.getpid(), fields)
        else:
            line = text_line(created, "INFO", self.name, message, fields)
        try:
            handler.write_line(line)
        except Exception:  # as StreamHandler.emit: reported by logging, never raised into the request
            handler.handleError(logging.LogRecord(self.name, logging.INFO, "", 0, message, None, None))

    def _through_logging(self, message: str, fields: dict[str, Any]) -> None:
        record = self.logger.makeRecord(self.name, logging.INFO, "", 0, message, (), None, extra=fields)
        (logging.getLogger() if self.to_root else self.logger).handle(record)


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
        "filters": {"request": {"()": RequestContextFilter}, "redact": {"()": RedactSecrets}},
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {
            "stdout": {
                "class": "app.logging.ServiceHandler",
                "stream": "ext://sys.stdout",
                "formatter": resolve_format(settings),
                "filters": ["request", "redact"],  # in this order: access lines are rewritten first
            }
        },
        "loggers": {
            # uvicorn's loggers lose their own handlers and propagate to ours.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            # The access line is written by app.api.middleware (a HotLine named uvicorn.access): uvicorn's
            # own (hasHandlers() False, so uvicorn skips even building it) would be a second line.
            "uvicorn.access": {"handlers": [], "level": level, "propagate": False},
            # pydicom's warnings can quote element values (patient data): only shown when debugging.
            "pydicom": {"handlers": [], "level": "DEBUG" if level == "DEBUG" else "ERROR", "propagate": True},
        },
        "root": {"handlers": ["stdout"], "level": level},
    }


def configure_logging(settings: Settings) -> None:
    """Route the app's, uvicorn's and every library's records through one handler in ``settings``' format.

    Replaces what a launcher set up before (uvicorn's own text handlers included); calling it again
    with the same settings changes nothing.

    Records stop collecting what no line shows: the calling frame (file, line, function), the thread
    and the multiprocessing process name; ``pid`` stays. The Logging HOWTO's "Optimization" section
    names these switches; they made each line ~20 % cheaper, and every request logs one or two.
    """
    logging.config.dictConfig(log_config(settings))
    logging.logThreads = False
    logging.logMultiprocessing = False
    setattr(logging, "_srcfile", None)  # noqa: B010 - the documented switch is a private name
