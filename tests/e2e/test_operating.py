"""The production entry point as an operator meets it: ``lightbox`` with two workers, its stdout, its /metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from tests.conftest import sample
from tests.e2e.process import Server, lightbox

PATIENT_FILE_NAME = "SMITH_JANE_19600101.dcm"  # clients name files after patients; logs must not repeat it


def sample_value(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    pattern = re.escape(name + (("{" + labels + "}") if labels else "")) + r" ([0-9.e+-]+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def pids_serving(server: Server, route: str) -> set[int]:
    records = [json.loads(line) for line in server.log_lines()]
    return {r["pid"] for r in records if r["logger"] == "uvicorn.access" and r.get("route") == route}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with lightbox(tmp_path_factory.mktemp("ops"), workers="2", log_format="auto") as running:
        yield running


@pytest.fixture(scope="module")
def traffic(server: Server) -> dict[str, str]:
    """A known set of requests, sent once; the tests below read the logs and metrics they left."""
    mr = sample("MR_small.dcm").read_bytes()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        stored = http.post("/upload", files={"file": (PATIENT_FILE_NAME, mr)}, headers={"X-Request-ID": "req-upload-1"})
        assert stored.status_code == 201, stored.text
        name = stored.json()["name"]
        assert http.post("/upload", files={"file": ("notes.txt", b"not dicom at all")}).status_code == 400
        assert http.get(f"/dicomFile/{name}?png", headers={"X-Request-ID": "req-render-1"}).status_code == 200
        for _ in range(3):
            assert http.get(f"/dicomFile/{name}", params={"tag": "PatientName"}).status_code == 200
        assert http.get("/dicomFile/nope.dcm", params={"tag": "Rows"}).status_code == 404
    health_checks = 0
    for _ in range(200):  # new connections until both workers answered some (the kernel picks)
        with httpx.Client(base_url=server.url, timeout=30) as fresh:
            assert fresh.get("/healthz").status_code == 200
        health_checks += 1
        if health_checks >= 10 and len(pids_serving(server, "/healthz")) == 2:
            break
    assert len(pids_serving(server, "/healthz")) == 2
    with httpx.Client(base_url=server.url, timeout=30) as http:
        metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    return {"name": name, "metrics": metrics.text, "health_checks": str(health_checks)}


def test_logs_are_one_json_object_per_line_with_request_fields(server: Server, traffic: dict[str, str]) -> None:
    lines = server.log_lines()
    records = [json.loads(line) for line in lines]  # every line, uvicorn's start-up lines included
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    assert any(r["logger"] == "uvicorn.error" and "startup complete" in r["message"] for r in records)
    upload = next(r for r in records if r.get("request_id") == "req-upload-1" and r["logger"] == "uvicorn.access")
    assert upload["level"] == "info"
    assert upload["method"] == "POST" and upload["route"] == "/upload" and upload["status"] == 201
    assert isinstance(upload["duration_ms"], float) and upload["duration_ms"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", upload["time"])
    rejected = next(r for r in records if r.get("status") == 400 and r.get("route") == "/upload")
    assert rejected["error"] == "invalid_dicom"
    render = next(r for r in records if r.get("request_id") == "req-render-1" and r["logger"] == "uvicorn.access")
    assert render["route"] == "/dicomFile/{name}" and render["status"] == 200
    generated = [r["request_id"] for r in records if r.get("route") == "/healthz"]
    assert len(generated) == int(traffic["health_checks"]) and all(
        re.fullmatch(r"[0-9a-f]{32}", rid) for rid in generated
    )


def test_logs_hold_no_patient_data(server: Server, traffic: dict[str, str]) -> None:
    header = dcmread(sample("MR_small.dcm"), stop_before_pixels=True)
    text = server.log_path.read_text()
    for secret in ("SMITH", "JANE", "19600101", str(header.PatientName), str(header.PatientID), traffic["name"]):
        assert secret not in text


def test_metrics_sum_every_worker(traffic: dict[str, str]) -> None:
    text = traffic["metrics"]
    requests = "lightbox_http_requests_total"
    health_checks = int(traffic["health_checks"])  # served by both workers, counted once each
    assert sample_value(text, requests, 'method="GET",route="/healthz",status="200"') == health_checks
    assert sample_value(text, requests, 'method="POST",route="/upload",status="201"') == 1
    assert sample_value(text, requests, 'method="GET",route="/dicomFile/{name}",status="200"') == 4
    assert sample_value(text, requests, 'method="GET",route="/dicomFile/{name}",status="404"') == 1
    histogram = "lightbox_http_request_duration_seconds"
    assert sample_value(text, histogram + "_count", 'method="GET",route="/healthz",status="200"') == health_checks
    bucket = 'le="+Inf",method="GET",route="/healthz",status="200"'
    assert sample_value(text, histogram + "_bucket", bucket) == health_checks
    assert sample_value(text, "lightbox_uploads_total") == 1
    assert sample_value(text, "lightbox_upload_bytes_total") == sample("MR_small.dcm").stat().st_size
    assert sample_value(text, "lightbox_upload_rejections_total", 'reason="invalid_dicom"') == 1
    assert sample_value(text, "lightbox_renders_total", 'outcome="ok"') == 1
    assert sample_value(text, "lightbox_render_duration_seconds_count", 'outcome="ok"') == 1
    header_reads = sample_value(text, "lightbox_cache_hits_total", 'cache="headers"') + sample_value(
        text, "lightbox_cache_misses_total", 'cache="headers"'
    )
    assert header_reads == 1  # the render parses the header; tag lookups answer from the index
    answers = sample_value(text, "lightbox_cache_hits_total", 'cache="answers"') + sample_value(
        text, "lightbox_cache_misses_total", 'cache="answers"'
    )
    assert answers == 4  # one answer-cache look per tag lookup (3 found, 1 unknown file), whichever worker served it
    assert sample_value(text, "lightbox_http_requests_in_flight") == 1  # the scrape itself
    assert "PROMETHEUS_MULTIPROC_DIR" not in text


def test_invalid_setting_stops_start_up_with_exit_code_2(tmp_path: Path) -> None:
    import subprocess

    from tests.e2e.process import LIGHTBOX

    for variable, value in (("LIGHTBOX_WORKERS", "0"), ("LIGHTBOX_LOG_FORMAT", "xml"), ("LIGHTBOX_PORT", "http")):
        env = {"PATH": "/usr/bin:/bin", variable: value, "LIGHTBOX_STORAGE_DIR": str(tmp_path)}
        result = subprocess.run([LIGHTBOX], env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and variable in result.stderr, result.stderr
        assert result.stdout == ""
