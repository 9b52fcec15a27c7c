"""X-Request-ID on every response, the log context of a request, and metrics recorded by real requests."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.logging import JsonFormatter, RequestContextFilter
from app.main import create_app
from tests.conftest import sample, upload

pytestmark = pytest.mark.anyio

GENERATED = re.compile(r"[0-9a-f]{32}")


async def test_a_valid_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.2_x"})
    assert response.headers["x-request-id"] == "lb-7f3a.2_x"


@pytest.mark.parametrize("given", ["a" * 65, "has space", "new\\nline", "ünï", "", "x;drop"])
async def test_an_invalid_request_id_is_replaced(client: httpx.AsyncClient, given: str) -> None:
    response = await client.get("/healthz", headers={b"X-Request-ID": given.encode()})
    assert GENERATED.fullmatch(response.headers["x-request-id"])


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    responses = [
        await client.get("/healthz"),
        await client.get("/no/such/route"),  # 404 from the router
        await client.delete("/healthz"),  # 405
        await client.get("/dicomFile/x.dcm"),  # 400 from the domain
        await client.get("/dicomFile/x.dcm", params={"frame": "0", "png": ""}),  # 400 from validation
        await client.post("/upload", content=b"x" * 10, headers={"content-type": "text/plain"}),
    ]
    assert [r.status_code for r in responses] == [200, 404, 405, 400, 400, 400]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(GENERATED.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)


async def test_even_an_unexpected_500_carries_the_request_id(settings: Settings) -> None:
    app = create_app(settings)

    async def broken() -> None:
        raise RuntimeError("bug")

    app.add_api_route("/broken", broken)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as client:
            response = await client.get("/broken", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: the request could not be completed"}
    assert response.headers["x-request-id"] == "trace-500"
    text = app.state.metrics.exposition().decode()
    assert 'lightbox_http_requests_total{method="GET",route="/broken",status="500"} 1.0' in text


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestContextFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_log_lines_inside_a_request_carry_its_context(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Lines logged while serving (here from the error table, in the request's task) carry its fields."""
    import json

    async def broken() -> None:
        raise RuntimeError("bug")

    app.add_api_route("/broken/{name}", broken)
    capture = Capture()
    errors_log = logging.getLogger("lightbox.errors")
    errors_log.addHandler(capture)
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as raw:
            await raw.get("/broken/DOE_JOHN.dcm", headers={"X-Request-ID": "ctx-1"})
    finally:
        errors_log.removeHandler(capture)
    [line] = capture.lines
    record = json.loads(line)
    assert record["request_id"] == "ctx-1" and record["method"] == "GET" and record["route"] == "/broken/{name}"
    assert record["level"] == "error" and record["error"] == "runtime_error" and "RuntimeError" in record["exception"]
    assert "DOE" not in line  # the raw path (a client's file name) is not logged


async def test_metrics_after_real_requests(app: FastAPI, client: httpx.AsyncClient) -> None:
    name = await upload(client, sample("CT_small.dcm"))
    assert (await client.post("/upload", files={"file": ("a.dcm", b"DICM")})).status_code == 400
    assert (await client.get(f"/dicomFile/{name}?png")).status_code == 200
    assert (await client.get(f"/dicomFile/{name}?png&window=40,400")).status_code == 200
    assert (await client.get(f"/dicomFile/{name}?tag=Rows")).status_code == 200
    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'lightbox_http_requests_total{method="POST",route="/upload",status="201"} 1.0' in text
    assert 'lightbox_http_requests_total{method="POST",route="/upload",status="400"} 1.0' in text
    assert 'lightbox_http_requests_total{method="GET",route="/dicomFile/{name}",status="200"} 3.0' in text
    assert "lightbox_uploads_total 1.0" in text
    assert f"lightbox_upload_bytes_total {float(sample('CT_small.dcm').stat().st_size)}" in text
    assert 'lightbox_upload_rejections_total{reason="invalid_dicom"} 1.0' in text
    assert 'lightbox_renders_total{outcome="ok"} 2.0' in text
    # ?tag= answers from the index; the two renders parse the header once and miss the render cache twice
    assert 'lightbox_cache_misses_total{cache="headers"} 1.0' in text
    assert 'lightbox_cache_hits_total{cache="headers"} 1.0' in text
    assert 'lightbox_cache_misses_total{cache="renders"} 2.0' in text
    assert 'lightbox_index_entries{level="instances"} 1.0' in text
    assert "lightbox_http_requests_in_flight 1.0" in text  # the scrape itself


async def test_failed_renders_are_counted_by_outcome(client: httpx.AsyncClient) -> None:
    name = await upload(client, sample("rtplan.dcm"))  # an RT Plan: DICOM, but no image
    assert (await client.get(f"/dicomFile/{name}?png")).status_code == 422
    text = (await client.get("/metrics")).text
    assert 'lightbox_renders_total{outcome="not_renderable"} 1.0' in text


async def test_index_size_is_asked_at_each_scrape(app: FastAPI, client: httpx.AsyncClient) -> None:
    counts = {"instances": 0, "studies": 0}

    async def index_counts() -> dict[str, int]:
        return dict(counts)

    app.state.index_counts = index_counts
    assert 'lightbox_index_entries{level="instances"} 0.0' in (await client.get("/metrics")).text
    counts.update(instances=12, studies=3)
    text = (await client.get("/metrics")).text
    assert 'lightbox_index_entries{level="instances"} 12.0' in text
    assert 'lightbox_index_entries{level="studies"} 3.0' in text


async def test_an_answered_crash_is_logged_once_and_not_raised_to_the_server(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The 500 went out and our handler logged the traceback; the server is not handed the error again
    (it would log a second traceback and close the keep-alive connection)."""

    async def broken() -> None:
        raise RuntimeError("bug")

    app.add_api_route("/broken", broken)
    capture = Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        response = await client.get("/broken")  # this transport raises what the app raises
    finally:
        root.removeHandler(capture)
    assert response.status_code == 500
    assert sum("RuntimeError: bug" in line for line in capture.lines) == 1
    assert (await client.get("/healthz")).status_code == 200
