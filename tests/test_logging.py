"""Log formats and configuration (the real process output is checked in tests/e2e/test_operating.py)."""

from __future__ import annotations

import io
import json
import logging

from app.config import Settings
from app.errors import InvalidDicom, UploadTooLarge
from app.logging import (
    JsonFormatter,
    RequestContext,
    RequestContextFilter,
    TextFormatter,
    current_request,
    error_kind,
    log_config,
    resolve_format,
    status_kind,
)


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
