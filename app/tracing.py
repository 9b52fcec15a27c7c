"""OpenTelemetry tracing, configured only by the standard ``OTEL_*`` environment variables.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set: then
nothing is instrumented and :func:`span` returns one shared no-op context, so an untraced service
pays one global read per span site. ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``
turn it off too. On, the SDK reads the rest itself: ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER(_ARG)``, ``OTEL_BSP_*`` (batching),
``OTEL_EXPORTER_OTLP_*`` (headers, timeout, certificates) and ``OTEL_PROPAGATORS``. The exporter is
OTLP over HTTP/protobuf (the OTLP specification's default protocol).

What is traced: every HTTP request (upstream ASGI instrumentation, outermost, so the request's
whole life including our request-id middleware is inside its span), every SQL statement
(upstream SQLAlchemy instrumentation), and our own steps: upload validation, index commit,
render with decode, window and encode, the decode sandbox.

No patient data in spans: stored names embed the client's file name, so the server span is named
by the route *template* and its URL attributes are overwritten with it; our spans carry options
(frame, format, size) and outcomes, never names, paths or messages; an error is recorded by its
class name only (exception messages can quote header values).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__

if TYPE_CHECKING:  # the SDK and the instrumentations are imported only when tracing is on
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.engine import Engine

log = logging.getLogger("lightbox.tracing")

INSTRUMENTATION_NAME = "lightbox"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
# Attributes of the server span that hold the raw path or query (old and stable HTTP conventions).
URL_ATTRIBUTES = ("http.target", "http.url", "url.path", "url.full")
QUERY_ATTRIBUTES = ("url.query",)
# Header values never recorded, even when an operator captures headers
# (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST); added to ..._SANITIZE_FIELDS.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key")
AttributeValue = str | int | float | bool

_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()
_tracer: Tracer | None = None  # set while a Tracing is installed; None means tracing is off


SANITIZE_VARIABLE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"


def _listed(variable: str) -> list[str]:
    return [item.strip() for item in os.environ.get(variable, "").split(",") if item.strip()]


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (an OTLP endpoint set, the SDK not disabled)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def _resource() -> Resource:
    """``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` as given; ``service.name`` defaults to lightbox."""
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    resource = Resource.create({SERVICE_VERSION: __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "lightbox"}))
    return resource


def _route_of(scope: Scope) -> str:
    """The matched route's template (the router puts it in the scope), ``unmatched`` before or without one."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def _redact_url(span: Span, value: str) -> None:
    """Overwrite the attributes that hold the raw path or query (only those the instrumentation set)."""
    present = getattr(span, "attributes", None) or {}
    for key in URL_ATTRIBUTES:
        if key in present:
            span.set_attribute(key, value)
    for key in QUERY_ATTRIBUTES:
        if key in present:
            span.set_attribute(key, "[redacted]")


def _scrub_at_start(span: Span, scope: Scope) -> None:
    """No route is known yet: the raw path is replaced at once, so no code path can export it."""
    if span.is_recording():
        _redact_url(span, "unmatched")


class NameServerSpan:
    """Inside the ASGI instrumentation: once routed, the server span is named ``GET /dicomFile/{name}``.

    The route template is only known after the router ran (FastAPI includes routers lazily), so the
    span starts as ``GET`` and is renamed when the response starts (a request that never answers
    stays ``GET``, its URL attributes ``unmatched``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server_span = trace.get_current_span()

        async def send_naming(message: Message) -> None:
            # before the response goes out: the instrumentation ends the span with the last body message
            if message["type"] == "http.response.start" and server_span.is_recording():
                route = _route_of(scope)
                server_span.update_name(f"{scope['method']} {route}")
                server_span.set_attribute("http.route", route)
                _redact_url(server_span, route)
            await send(message)

        await self.app(scope, receive, send_naming)


class Tracing:
    """One tracer provider and what it instruments; :func:`install_tracing` puts it on an app."""

    def __init__(self, processor: SpanProcessor, provider: TracerProvider | None = None) -> None:
        from opentelemetry.sdk.trace import TracerProvider

        self.provider = provider or TracerProvider(resource=_resource())
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer(INSTRUMENTATION_NAME, __version__)

    @classmethod
    def from_exporter(cls, exporter: SpanExporter, provider: TracerProvider | None = None) -> Tracing:
        """Spans batched to ``exporter`` (``OTEL_BSP_*`` tune the batches)."""
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        return cls(BatchSpanProcessor(exporter), provider)

    def wrap_asgi(self, stack: ASGIApp) -> ASGIApp:
        """``stack`` inside the upstream ASGI middleware: one server span per request, named by route template."""

        def span_details(scope: Scope) -> tuple[str, dict[str, str]]:
            return str(scope.get("method", "HTTP")), {}  # renamed by NameServerSpan once routed

        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        middleware: ASGIApp = OpenTelemetryMiddleware(
            NameServerSpan(stack),
            default_span_details=span_details,
            server_request_hook=_scrub_at_start,
            tracer_provider=self.provider,
            meter_provider=metrics.NoOpMeterProvider(),  # metrics are Prometheus' job (app.metrics)
            exclude_spans=["receive", "send"],  # one span per ASGI message would cost more than it tells
            http_capture_headers_sanitize_fields=[*SECRET_HEADERS, *_listed(SANITIZE_VARIABLE)],
        )
        return middleware

    def instrument_engine(self, engine: Engine) -> None:
        """A span per SQL statement (the statement with placeholders, never the bound values)."""
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

        usage = metrics.NoOpMeterProvider().get_meter(INSTRUMENTATION_NAME).create_up_down_counter("unused")
        EngineTracer(self.tracer, engine, usage, enable_commenter=False)  # type: ignore[no-untyped-call]

    def activate(self) -> None:
        global _tracer
        _tracer = self.tracer

    def shutdown(self) -> None:
        """Export what is pending and stop; :func:`span` is a no-op again."""
        global _tracer
        if _tracer is self.tracer:
            _tracer = None
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

        EngineTracer.remove_all_event_listeners()  # type: ignore[no-untyped-call]
        self.provider.shutdown()


def tracing_from_environment(environ: Mapping[str, str] | None = None) -> Tracing | None:
    """The tracing the ``OTEL_*`` variables describe, or None when they ask for none."""
    env = os.environ if environ is None else environ
    if not tracing_enabled(env):
        return None
    protocol = next((env[name] for name in PROTOCOL_VARIABLES if env.get(name)), "http/protobuf").strip().lower()
    if protocol != "http/protobuf":
        log.warning("tracing is off: OTEL_EXPORTER_OTLP_PROTOCOL %r is not supported, only http/protobuf", protocol)
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # only when tracing

    return Tracing.from_exporter(OTLPSpanExporter())


def install_tracing(app: Any, tracing: Tracing | None) -> None:
    """Trace ``app`` (an :class:`app.api.middleware.ObservedFastAPI`, before it serves) with ``tracing``.

    The app wraps its middleware stack and instruments its index engine when it starts; the
    lifespan's end shuts the tracing down (pending spans are exported).
    """
    app.state.tracing = tracing
    if tracing is not None:
        tracing.activate()


@contextlib.contextmanager
def _recorded(tracer: Tracer, name: str, attributes: Mapping[str, AttributeValue]) -> Iterator[Span]:
    with tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR))  # no description: messages can quote patient data
            current.set_attribute("error.type", type(exc).__name__)
            raise


def span(name: str, **attributes: AttributeValue) -> AbstractContextManager[Span | None]:
    """``with span("render.decode", frame=1):`` a child span ``lightbox.render.decode``; free when tracing is off.

    The name and attributes are prefixed ``lightbox.``; give options and outcomes only, never names or values.
    """
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    return _recorded(tracer, f"lightbox.{name}", {f"lightbox.{key}": value for key, value in attributes.items()})


def set_span_attribute(key: str, value: AttributeValue) -> None:
    """Add ``lightbox.<key>`` to the current span (an outcome learnt inside it); nothing when tracing is off."""
    if _tracer is not None:
        trace.get_current_span().set_attribute(f"lightbox.{key}", value)


def current_trace_id() -> str | None:
    """The current trace's id in W3C form (32 hex digits), for log lines; None when untraced."""
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
