"""Tracing over the real app: span trees of an upload and a render, from the SDK's in-memory exporter.

The spans must tell an operator where a slow request spent its time (validation, index commit
with its SQL, decode, window, encode, the decode sandbox) and must never carry patient data:
the client's file name (often a patient's name) is in every stored name, hence in every raw path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from app import tracing
from app.config import Settings
from app.main import create_app
from app.tracing import Tracing, install_tracing, span, tracing_enabled
from tests.conftest import sample

pytestmark = pytest.mark.anyio

PATIENT_FILE_NAME = "SMITH_JANE_19600101.dcm"
PATIENT_WORDS = ("SMITH", "JANE", "19600101")


@dataclass
class Traced:
    client: httpx.AsyncClient
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def tree(self, root: ReadableSpan) -> dict[str, list[str]]:
        """Span name -> names of its children, for the trace under ``root``."""
        spans = [s for s in self.spans() if s.context.trace_id == root.context.trace_id]
        return {
            s.name: sorted(c.name for c in spans if c.parent is not None and c.parent.span_id == s.context.span_id)
            for s in spans
        }

    def server_span(self, name: str) -> ReadableSpan:
        (found,) = [s for s in self.spans() if s.name == name and s.parent is None]
        return found


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    yield memory
    assert tracing._tracer is None, "the app's lifespan shuts its tracing down"


@pytest.fixture
async def traced(tmp_path: object, exporter: InMemorySpanExporter, settings: Settings) -> AsyncIterator[Traced]:
    application = create_app(settings)
    install_tracing(application, Tracing(SimpleSpanProcessor(exporter)))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as http:
            yield Traced(http, exporter)


async def stored(traced: Traced, file: str = "MR_small.dcm") -> str:
    response = await traced.client.post("/upload", files={"file": (PATIENT_FILE_NAME, sample(file).read_bytes())})
    assert response.status_code == 201, response.text
    name: str = response.json()["name"]
    return name


def assert_no_patient_data(spans: list[ReadableSpan], name: str) -> None:
    for item in spans:
        texts = [item.name, *(str(v) for v in (item.attributes or {}).values())]
        texts += [str(v) for event in item.events for v in (event.attributes or {}).values()]
        for text in texts:
            assert name not in text and not any(word in text for word in PATIENT_WORDS), (item.name, text)


async def test_upload_span_tree_shows_validation_and_the_index_commit_with_its_sql(traced: Traced) -> None:
    name = await stored(traced)
    root = traced.server_span("POST /upload")
    tree = traced.tree(root)
    assert "lightbox.upload.validate" in tree["POST /upload"]
    assert "lightbox.index.commit" in tree["POST /upload"]
    commit_children = tree["lightbox.index.commit"]
    # the SQL of the commit: the batch's transaction (group commit) and each row's savepoint
    assert commit_children and all(
        child.split()[0] in {"BEGIN", "SAVEPOINT", "RELEASE", "INSERT", "SELECT", "UPDATE"} for child in commit_children
    )
    assert any(child.startswith("INSERT") for child in commit_children)
    assert any(child.startswith("SAVEPOINT") for child in commit_children)
    sql = [s for s in traced.spans() if s.name.startswith("INSERT")]
    assert all((s.attributes or {}).get("db.system") == "sqlite" for s in sql)
    validate = next(s for s in traced.spans() if s.name == "lightbox.upload.validate")
    assert (validate.attributes or {})["lightbox.size"] == sample("MR_small.dcm").stat().st_size
    assert root.attributes is not None and root.attributes["http.route"] == "/upload"
    assert root.attributes.get("http.status_code", root.attributes.get("http.response.status_code")) == 201
    assert_no_patient_data(traced.spans(), name)


async def test_render_span_tree_shows_decode_window_and_encode(traced: Traced) -> None:
    name = await stored(traced)
    traced.exporter.clear()
    response = await traced.client.get(f"/dicomFile/{name}", params={"png": "", "size": "32"})
    assert response.status_code == 200
    root = traced.server_span("GET /dicomFile/{name}")
    tree = traced.tree(root)
    assert [c for c in tree["GET /dicomFile/{name}"] if not c.startswith("SELECT")] == ["lightbox.render"]
    assert tree["lightbox.render"] == ["lightbox.render.decode", "lightbox.render.encode", "lightbox.render.window"]
    render = next(s for s in traced.spans() if s.name == "lightbox.render")
    assert render.attributes is not None
    assert render.attributes["lightbox.cache_hit"] is False
    assert render.attributes["lightbox.bytes"] == len(response.content)
    encode = next(s for s in traced.spans() if s.name == "lightbox.render.encode")
    assert encode.attributes == {"lightbox.format": "png", "lightbox.size": 32}
    # the server span names the route, never the path that holds the client's file name
    for key in ("http.target", "http.url", "url.path", "url.full"):
        if key in (root.attributes or {}):
            assert root.attributes is not None and root.attributes[key] == "/dicomFile/{name}"
    assert_no_patient_data(traced.spans(), name)

    traced.exporter.clear()
    assert (await traced.client.get(f"/dicomFile/{name}", params={"png": "", "size": "32"})).status_code == 200
    again = traced.tree(traced.server_span("GET /dicomFile/{name}"))
    assert again["lightbox.render"] == []  # a cached render: nothing decoded
    cached = next(s for s in traced.spans() if s.name == "lightbox.render")
    assert cached.attributes is not None and cached.attributes["lightbox.cache_hit"] is True


async def test_compressed_render_runs_under_a_decode_sandbox_span(traced: Traced) -> None:
    name = await stored(traced, "MR_small_RLE.dcm")
    traced.exporter.clear()
    assert (await traced.client.get(f"/dicomFile/{name}", params={"jpeg": ""})).status_code == 200
    tree = traced.tree(traced.server_span("GET /dicomFile/{name}"))
    assert tree["lightbox.render"] == ["lightbox.decode_sandbox"]
    sandbox = next(s for s in traced.spans() if s.name == "lightbox.decode_sandbox")
    assert sandbox.status.status_code is StatusCode.UNSET


async def test_a_failed_step_is_an_error_span_named_by_its_class_only(traced: Traced) -> None:
    response = await traced.client.post("/upload", files={"file": (PATIENT_FILE_NAME, b"SMITH JANE is not DICOM")})
    assert response.status_code == 400
    validate = next(s for s in traced.spans() if s.name == "lightbox.upload.validate")
    assert validate.status.status_code is StatusCode.ERROR
    assert validate.status.description is None
    assert validate.attributes is not None and validate.attributes["error.type"] == "InvalidDicom"
    assert not validate.events  # no exception event: its message could quote the file
    assert_no_patient_data(traced.spans(), PATIENT_FILE_NAME)


async def test_untraced_app_has_no_tracing_layer_and_spans_cost_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert app.state.tracing is None
    layer = app.middleware_stack
    while layer is not None:
        assert not isinstance(layer, OpenTelemetryMiddleware)
        layer = getattr(layer, "app", None)
    first, second = span("render", frame=1), span("index.commit")
    assert first is second and isinstance(first, nullcontext)  # one shared no-op, no allocation
    assert tracing.current_trace_id() is None


def test_an_untraced_service_does_not_even_import_the_sdk() -> None:
    code = (
        "import sys, app.main; app.main.create_app(); "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.instrumentation'))))"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LIGHTBOX_"))}
    result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "lightbox"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
    ],
)
def test_only_an_otlp_endpoint_turns_tracing_on(environ: dict[str, str], enabled: bool) -> None:
    assert tracing_enabled(environ) is enabled
