"""Log formats and configuration (the real process output is checked in tests/e2e/test_operating.py)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator

import pytest

from app.config import Settings
from app.errors import InvalidDicom, UploadTooLarge
from app.logging import (
    HotLine,
    JsonFormatter,
    RedactSecrets,
    RequestContext,
    RequestContextFilter,
    ServiceHandler,
    TextFormatter,
    _iso_time,
    configure_logging,
    current_request,
    error_kind,
    json_line,
    log_config,
    redact,
    resolve_format,
    status_kind,
)

SECRET = "S3cretT0ken.value-42"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def access_record() -> logging.LogRecord:
    """A record exactly as uvicorn's access logger makes it."""
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/dicomFile/x-DOE_JOHN.dcm?tag=PatientName", "1.1", 200), None,
    )  # fmt: skip


def test_auto_format_is_json_unless_a_person_watches() -> None:
    assert resolve_format(Settings(), io.StringIO()) == "json"
    assert resolve_format(Settings(), Terminal()) == "text"
    assert resolve_format(Settings(log_format="json"), Terminal()) == "json"
    assert resolve_format(Settings(log_format="text"), io.StringIO()) == "text"


def test_the_level_applies_to_the_app_and_to_uvicorn() -> None:
    config = log_config(Settings(log_level="warning", log_format="json"))
    assert config["root"]["level"] == "WARNING"
    assert {config["loggers"][name]["level"] for name in ("uvicorn", "uvicorn.error", "uvicorn.access")} == {"WARNING"}
    assert config["loggers"]["pydicom"]["level"] == "ERROR"  # its warnings may quote element values
    assert config["handlers"]["stdout"]["formatter"] == "json"


def test_access_lines_carry_the_route_template_and_not_the_raw_path() -> None:
    scope = {"route": type("Route", (), {"path": "/dicomFile/{name}"})()}
    token = current_request.set(RequestContext("rid-1", "GET", scope, status=200))
    try:
        record = access_record()
        assert RequestContextFilter().filter(record)
    finally:
        current_request.reset(token)
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "GET /dicomFile/{name} 200"
    assert entry["request_id"] == "rid-1" and entry["route"] == "/dicomFile/{name}" and entry["status"] == 200
    assert entry["client"] == "127.0.0.1:5000" and entry["duration_ms"] >= 0
    assert "DOE" not in line and "PatientName" not in line


def test_text_format_for_people() -> None:
    token = current_request.set(RequestContext("rid-2", "POST", {}, error="invalid_dicom"))
    try:
        record = logging.LogRecord("lightbox", logging.WARNING, __file__, 1, "refused %s", ("a file",), None)
        RequestContextFilter().filter(record)
    finally:
        current_request.reset(token)
    line = TextFormatter().format(record)
    assert line.endswith("WARNING lightbox [rid-2] refused a file error=invalid_dicom")


def test_error_kinds_are_bounded_labels() -> None:
    assert error_kind(InvalidDicom("x")) == "invalid_dicom"
    assert error_kind(UploadTooLarge("x")) == "upload_too_large"
    assert status_kind(404) == "not_found" and status_kind(599) == "status_599"


@pytest.mark.parametrize(
    "text",
    [
        f"GET /dicomFile/x.dcm?tag=Rows&token={SECRET} HTTP/1.1",
        f"http://127.0.0.1:8080/shares?token={SECRET}",
        f"illegal request line: bytearray(b'GET /?access_token={SECRET} HTTP/1.1 x')",
        f"Authorization: Bearer {SECRET}",
        f"authorization: basic {SECRET}",
        f"headers: [(b'host', b'x'), (b'authorization', b'Bearer {SECRET}')]",
        f"{{'Authorization': 'Basic {SECRET}'}}",
        f"cookie: lightbox_session={SECRET}; theme=dark",
        f"sent Bearer {SECRET} to the index",
        f'login body {{"username": "ann", "password": "{SECRET}"}}',
        f"create(api_key='{SECRET}')",
        f"the key lbx_7f3a_{SECRET} was used",
        f"could not connect to postgresql+asyncpg://lightbox:{SECRET}@db:5432/lightbox",
        f"GET /dicomFile/x.dcm?TOKEN={SECRET} HTTP/1.1",  # any case
        f"GET /dicomFile/Müller.dcm?token={SECRET} HTTP/1.1",  # non-ASCII text takes the regex's search
        f"api_\u212aey={SECRET}",  # KELVIN SIGN: case-folds to "k", as the patterns do
    ],
)
def test_credentials_are_redacted_wherever_they_appear(text: str) -> None:
    redacted = redact(text)
    assert SECRET not in redacted and "[redacted]" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "GET /dicomFile/{name} 200",
        "starting 2 worker(s) on 127.0.0.1:8080 (graceful shutdown 25 s)",
        "refused: missing authorization, or a bearer token that expired",
        "tag=PatientName frame=2 window=40,400 cache_key_count=3",
        "Uvicorn running on http://127.0.0.1:8080 (Press CTRL+C to quit)",
        "sqlite+aiosqlite:////srv/lightbox/uploads/index.sqlite3",
    ],
)
def test_ordinary_lines_are_left_alone(text: str) -> None:
    assert redact(text) == text


def formatted(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    """``record`` as our handler writes it: request filter, redaction, then the formatter."""
    assert RequestContextFilter().filter(record) and RedactSecrets().filter(record)
    return formatter.format(record)


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_arguments_tracebacks_and_stacks_are_redacted(formatter: logging.Formatter) -> None:
    try:
        raise ValueError(f"bad request http://h/dicomFile/a.dcm?png&token={SECRET}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "failed on %s", (f"/x?token={SECRET}",), exc_info
    )
    record.stack_info = f"Stack (most recent call last):\n  handle(headers={{'authorization': 'Bearer {SECRET}'}})"
    line = formatted(record, formatter)
    assert SECRET not in line
    assert "ValueError: bad request" in line and "token=[redacted]" in line and "Stack" in line


def test_an_access_line_without_request_context_still_has_no_query() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/dicomFile/a.dcm?token={SECRET}", "1.1", 404), None,
    )  # fmt: skip
    line = formatted(record, JsonFormatter())
    assert json.loads(line)["message"] == "GET - 404" and SECRET not in line


def test_the_handler_redacts_before_formatting() -> None:
    handler = log_config(Settings(log_format="json"))["handlers"]["stdout"]
    assert handler["filters"] == ["request", "redact"]


def test_line_times_stay_exact_when_the_second_changes() -> None:
    """The seconds part is formatted once per second: going forwards and back gives the right text."""
    assert _iso_time(0.5) == "1970-01-01T00:00:00.500Z"
    assert _iso_time(0.999) == "1970-01-01T00:00:00.999Z"
    assert _iso_time(1.25) == "1970-01-01T00:00:01.250Z"
    assert _iso_time(0.75) == "1970-01-01T00:00:00.750Z"
    assert _iso_time(1_764_671_516.5) == "2025-12-02T10:31:56.500Z"


def test_a_line_orjson_refuses_is_still_written_whole() -> None:
    """Lines are encoded by orjson; a value it refuses (an integer past 64 bits, a lone surrogate)
    falls back to the json module rather than losing the line."""
    for odd in (2**70, "half \ud800 pair"):
        line = json_line(0.5, "info", "lightbox", "odd", 1, {"error": odd, "status": 200})
        assert json.loads(line) == {
            "time": "1970-01-01T00:00:00.500Z", "level": "info", "logger": "lightbox", "message": "odd", "pid": 1,
            "status": 200, "error": odd,
        }  # fmt: skip
    assert json_line(0.5, "info", "x", "m", 1, {"status": 200}).endswith('"pid":1,"status":200}')  # orjson's


def test_records_skip_what_no_line_shows(capsys: pytest.CaptureFixture[str]) -> None:
    """After configuring, records carry no caller frame or thread (never logged), and lines are unchanged."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging(Settings(log_format="json"))
        logging.getLogger("lightbox.test").info("hello %s", "there", extra={"action": "tag"})
        line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert line["message"] == "hello there" and line["action"] == "tag" and isinstance(line["pid"], int)
        assert not logging.logThreads and not logging.logMultiprocessing and logging.logProcesses
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def service_logging() -> Iterator[Callable[..., None]]:
    """``configure(format)`` installs the service's logging as ``lightbox`` does; undone afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    access = logging.getLogger("uvicorn.access")
    access_state = (list(access.handlers), access.level, access.propagate)

    def configure(log_format: str, log_level: str = "info") -> None:
        configure_logging(Settings(log_format=log_format, log_level=log_level))

    yield configure
    root.handlers[:] = handlers
    root.setLevel(level)
    access.handlers[:], access.level, access.propagate = access_state


AUDIT_FIELDS = {"audit": True, "action": "tag", "outcome": "success", "actor": "admin", "actor_type": "user"}


def _without_time(line: str, log_format: str) -> object:
    if log_format == "json":
        entry = json.loads(line)
        assert isinstance(entry.pop("time"), str)
        return entry
    return line.split(" ", 1)[1]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_hot_line_is_the_line_a_record_would_make(
    log_format: str, service_logging: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    """The audit and access lines skip logging's per-record work, not a byte of what they say."""
    service_logging(log_format)
    scope = {"route": type("Route", (), {"path": "/dicomFile/{name}"})()}
    token = current_request.set(RequestContext("rid-7", "GET", scope, status=200))
    try:
        HotLine("lightbox.audit").info("audit tag success", dict(AUDIT_FIELDS))
        logging.getLogger("lightbox.audit").info("audit %s %s", "tag", "success", extra=dict(AUDIT_FIELDS))
        HotLine("uvicorn.access", to_root=True).info(
            "GET /dicomFile/{name} 200", {"duration_ms": 1.5, "client": "127.0.0.1:5000"}
        )
    finally:
        current_request.reset(token)
    hot, logged, access = capsys.readouterr().out.splitlines()
    assert _without_time(hot, log_format) == _without_time(logged, log_format)
    if log_format == "json":
        entry = json.loads(access)
        assert entry["logger"] == "uvicorn.access" and entry["message"] == "GET /dicomFile/{name} 200"
        assert (entry["request_id"], entry["route"], entry["status"]) == ("rid-7", "/dicomFile/{name}", 200)
        assert (entry["client"], entry["duration_ms"]) == ("127.0.0.1:5000", 1.5)
    else:
        assert "uvicorn.access [rid-7] GET /dicomFile/{name} 200 duration_ms=1.5" in access


def test_a_hot_line_keeps_the_level_and_the_redaction(
    service_logging: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    service_logging("json", "warning")
    HotLine("lightbox.audit").info("audit tag success", dict(AUDIT_FIELDS))
    assert capsys.readouterr().out == ""
    service_logging("json")
    HotLine("lightbox.audit").info(f"audit with token={SECRET}", {})
    line = capsys.readouterr().out
    assert SECRET not in line and "token=[redacted]" in line


def test_uvicorn_writes_no_access_line_of_its_own(service_logging: Callable[..., None]) -> None:
    """uvicorn builds its line only when ``uvicorn.access`` has handlers; the middleware writes it instead."""
    service_logging("json")
    assert not logging.getLogger("uvicorn.access").hasHandlers()


def test_a_hot_line_goes_through_logging_when_another_handler_listens(
    service_logging: Callable[..., None], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A capture handler (or any extra handler or filter) gets a real record, with every field."""
    service_logging("json")  # replaces the root's handlers, the capture's too: listen again
    logging.getLogger().addHandler(caplog.handler)
    with caplog.at_level(logging.INFO):
        HotLine("lightbox.audit").info("audit tag success", dict(AUDIT_FIELDS))
        HotLine("uvicorn.access", to_root=True).info("GET - 404", {"client": "127.0.0.1:1"})
    audit, access = caplog.records
    assert audit.name == "lightbox.audit" and audit.getMessage() == "audit tag success"
    assert audit.__dict__["actor"] == "admin" and audit.__dict__["audit"] is True
    assert access.name == "uvicorn.access" and access.__dict__["client"] == "127.0.0.1:1"
    assert len(capsys.readouterr().out.splitlines()) == 2  # the service's handler still wrote each once


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_hot_lines_on_the_loop_are_flushed_once_per_turn(service_logging: Callable[..., None]) -> None:
    """Many requests' lines of one loop turn leave in one flush, at the turn's end; off the loop, at once."""
    service_logging("json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, ServiceHandler)
    stream = CountingStream()
    handler.setStream(stream)
    line = HotLine("lightbox.audit")

    async def one_turn() -> int:
        for number in range(5):
            line.info(f"audit tag success {number}", {})
        flushed_during_the_turn = stream.flushes
        await asyncio.sleep(0)
        return flushed_during_the_turn

    assert asyncio.run(one_turn()) == 0
    assert stream.flushes == 1 and len(stream.getvalue().splitlines()) == 5
    line.info("audit tag success off the loop", {})
    assert stream.flushes == 2 and stream.getvalue().splitlines()[-1].endswith(f'"pid":{os.getpid()}}}')
