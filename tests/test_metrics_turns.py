"""The request middleware's metrics are written once per event-loop turn (app.metrics.Metrics.request_started):
counts and durations are exact, only their writing is grouped."""

from __future__ import annotations

import asyncio

import pytest

from app.metrics import FinishedRequest, Metrics

pytestmark = pytest.mark.anyio
LABELS = {"method": "GET", "route": "/dicomFile/{name}", "status": "200"}


class Cache:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0


def _value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, labels or {})


async def test_requests_of_one_turn_are_counted_together_at_its_end() -> None:
    metrics, cache = Metrics(), Cache()
    for running in (1, 2, 3):
        metrics.request_started(running)
    cache.hits = 2
    metrics.request_finished(2, FinishedRequest("GET", "/dicomFile/{name}", 200, 0.002, None), {"answers": cache})
    metrics.request_finished(1, FinishedRequest("GET", "/dicomFile/{name}", 200, 0.2, None), {"answers": cache})
    assert _value(metrics, "lightbox_http_requests_total", LABELS) is None  # nothing written within the turn
    await asyncio.sleep(0)
    assert _value(metrics, "lightbox_http_requests_total", LABELS) == 2
    assert _value(metrics, "lightbox_http_request_duration_seconds_count", LABELS) == 2
    assert _value(metrics, "lightbox_http_request_duration_seconds_sum", LABELS) == pytest.approx(0.202)
    assert _value(metrics, "lightbox_http_requests_in_flight") == 1  # the turn's final count
    assert _value(metrics, "lightbox_cache_hits_total", {"cache": "answers"}) == 2

    metrics.request_finished(0, FinishedRequest("POST", "/upload", 400, 0.01, "invalid_dicom"), {"answers": cache})
    metrics.flush_turn()  # a scrape writes the turn so far itself
    assert _value(metrics, "lightbox_http_requests_in_flight") == 0
    assert _value(metrics, "lightbox_request_errors_total", {"kind": "invalid_dicom"}) == 1
    await asyncio.sleep(0)  # the scheduled flush finds nothing new: nothing counted twice
    assert _value(metrics, "lightbox_http_requests_total", LABELS) == 2
    assert _value(metrics, "lightbox_request_errors_total", {"kind": "invalid_dicom"}) == 1


def test_without_an_event_loop_requests_are_counted_at_once() -> None:
    metrics = Metrics()
    metrics.request_started(1)
    assert _value(metrics, "lightbox_http_requests_in_flight") == 1
    metrics.request_finished(0, FinishedRequest("GET", "/dicomFile/{name}", 200, 0.002, None), {})
    assert _value(metrics, "lightbox_http_requests_total", LABELS) == 1
    assert _value(metrics, "lightbox_http_requests_in_flight") == 0
