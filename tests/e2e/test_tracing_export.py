"""Tracing as an operator turns it on: ``lightbox`` with only ``OTEL_*`` variables, exporting OTLP/HTTP
to a collector (here a small receiver in the test), with the trace id in every JSON log line of a request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import sample
from tests.e2e.server import RunningServer, run_server

PATIENT_FILE_NAME = "SMITH_JANE_19600101.dcm"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Collector(ThreadingHTTPServer):
    """Accepts ``POST /v1/traces`` (OTLP/HTTP, protobuf) and keeps every span it received."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CollectorHandler)
        self.spans: list[tuple[str, str, dict[str, str]]] = []  # (trace id, name, attributes as text)
        self.paths: list[str] = []
        self.received = threading.Condition()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, name: str, timeout: float = 20) -> None:
        with self.received:
            assert self.received.wait_for(lambda: any(s[1] == name for s in self.spans), timeout), self.spans


class CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        spans = [
            (span.trace_id.hex(), span.name, {a.key: str(a.value) for a in span.attributes})
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        with self.server.received:
            self.server.paths.append(self.path)
            self.server.spans.extend(spans)
            self.server.received.notify_all()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def traced_server(tmp_path: Path, collector: Collector) -> Iterator[RunningServer]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_SERVICE_NAME": "lightbox-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "LIGHTBOX_LOG_FORMAT": "json",
    }
    with run_server(tmp_path, env=env) as server:
        yield server


def test_otel_variables_alone_export_traces_and_stamp_log_lines(
    traced_server: RunningServer, collector: Collector
) -> None:
    with httpx.Client(base_url=traced_server.url, timeout=30) as http:
        stored = http.post("/upload", files={"file": (PATIENT_FILE_NAME, sample("MR_small.dcm").read_bytes())})
        assert stored.status_code == 201, stored.text
        name = stored.json()["name"]
        assert http.get(f"/dicomFile/{name}", params={"png": ""}).status_code == 200
        assert http.get(f"/dicomFile/{name}", params={"tag": "PatientName"}).status_code == 200
        caller = {"traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"}  # W3C Trace Context from a caller
        assert http.get("/healthz", headers=caller).status_code == 200
    collector.wait_for("GET /healthz")
    assert any(span[0] == CALLER_TRACE and span[1] == "GET /healthz" for span in collector.spans)
    collector.wait_for("POST /upload")
    collector.wait_for("lightbox.render.encode")
    assert set(collector.paths) == {"/v1/traces"}

    names = {span[1] for span in collector.spans}
    assert {"POST /upload", "lightbox.upload.validate", "lightbox.index.commit", "GET /dicomFile/{name}"} <= names
    assert {"lightbox.render", "lightbox.render.decode", "lightbox.render.window", "lightbox.render.encode"} <= names
    for _, span_name, attributes in collector.spans:
        assert "SMITH" not in span_name and not any("SMITH" in value for value in attributes.values())

    records = [json.loads(line) for line in traced_server.log_lines()]
    requests = [r for r in records if r.get("request_id") and r.get("route") in {"/upload", "/dicomFile/{name}"}]
    assert len(requests) >= 3  # one access line per request at least
    traced_ids = {span[0] for span in collector.spans}
    for record in requests:
        assert record.get("trace_id") in traced_ids, record
    per_request: dict[str, set[str]] = {}
    for record in requests:
        per_request.setdefault(record["request_id"], set()).add(record["trace_id"])
    assert all(len(ids) == 1 for ids in per_request.values())  # one trace per request
    assert len({next(iter(ids)) for ids in per_request.values()}) == len(per_request)
