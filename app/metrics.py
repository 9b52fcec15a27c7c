"""Prometheus metrics: what the service does, kept out of the domain code.

Requests are measured by :mod:`app.api.middleware`; routes and services report the rest through
the one-line hooks below (``record_upload_stored(request, size)`` and so on). Each app owns its
:class:`Metrics` on ``app.state.metrics``, so tests start from zero.

Several worker processes (``lightbox`` with ``LIGHTBOX_WORKERS`` > 1) each count on their own;
the launcher then sets ``PROMETHEUS_MULTIPROC_DIR`` and prometheus-client's multiprocess mode
sums every worker's counters from that folder, whichever worker answers the scrape.

Values that live elsewhere are read at scrape time or synced, never duplicated by hand:

* caches: anything with ``hits`` and ``misses`` put in ``app.state.caches[name]`` is synced into
  the ``lightbox_cache_*_total`` counters once per event-loop turn that ended requests (every worker counts);
* index size: ``app.state.index_counts`` (an async callable returning e.g.
  ``{"instances": n, "studies": m}``), when the app has one, is asked at each scrape; with it,
  ``app.state.missing_files`` (a callable returning the indexed files missing from storage);
* storage space: the file system of ``app.state.storage_root``, when set, is measured at each scrape.

Alerting rules over these metrics are in ``deploy/prometheus/alerts.yml`` (runbook: docs/runbook.md);
a dashboard in ``deploy/grafana/lightbox.json``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import anyio
from anyio import to_thread
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.requests import Request

from app.logging import error_kind, status_kind

log = logging.getLogger("lightbox.metrics")

T = TypeVar("T")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UPLOAD_ROUTES = frozenset({("POST", "/upload")})
MAX_CACHED_LABEL_SETS = 1000  # label children kept per app (methods x routes x statuses is far smaller)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

IndexCounts = Callable[[], Awaitable[Mapping[str, int]]]


class HitCounting(Protocol):
    """A cache that counts its hits and misses (such as :class:`app.services.cache.LruCache`)."""

    @property
    def hits(self) -> int: ...

    @property
    def misses(self) -> int: ...


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class FinishedRequest(NamedTuple):
    """What the metrics keep of one HTTP request."""

    method: str
    route: str | None
    status: int | None
    seconds: float
    error: str | None


class Metrics:
    """Every metric of one app, registered in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        http_labels = ["method", "route", "status"]
        self.requests = Counter(
            "lightbox_http_requests", "HTTP requests answered.", http_labels, registry=self.registry
        )
        self.request_seconds = Histogram(
            "lightbox_http_request_duration_seconds",
            "Time from request start to the end of the response.",
            http_labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "lightbox_http_requests_in_flight",
            "Requests being served now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.uploads = Counter("lightbox_uploads", "Files stored.", registry=self.registry)
        self.upload_bytes = Counter("lightbox_upload_bytes", "Bytes of the files stored.", registry=self.registry)
        self.upload_duplicates = Counter(
            "lightbox_upload_duplicates", "Uploads of a file already stored.", registry=self.registry
        )
        self.upload_rejections = Counter(
            "lightbox_upload_rejections", "Uploads refused, by reason.", ["reason"], registry=self.registry
        )
        self.renders = Counter("lightbox_renders", "Renders, by outcome.", ["outcome"], registry=self.registry)
        self.render_seconds = Histogram(
            "lightbox_render_duration_seconds",
            "Time to decode, window and encode one image, by outcome.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cache_hits = Counter("lightbox_cache_hits", "Cache hits, by cache.", ["cache"], registry=self.registry)
        self.cache_misses = Counter(
            "lightbox_cache_misses", "Cache misses, by cache.", ["cache"], registry=self.registry
        )
        self.dimse_associations = Counter(
            "lightbox_dimse_associations", "DICOM associations, by outcome.", ["outcome"], registry=self.registry
        )
        self.dimse_operations = Counter(
            "lightbox_dimse_operations",
            "DIMSE operations answered (C-ECHO, C-STORE, C-FIND, C-GET), by final status (hex).",
            ["operation", "status"],
            registry=self.registry,
        )
        self.request_errors = Counter(
            "lightbox_request_errors",
            "Failed requests, by error kind (index_unavailable, invalid_dicom, not_found, ...).",
            ["kind"],
            registry=self.registry,
        )
        self.swept_blobs = Counter(
            "lightbox_swept_blobs",
            "Orphaned blobs (no index row, older than the minimum age) removed by the sweeper.",
            registry=self.registry,
        )
        self.sandbox_restarts = Counter(
            "lightbox_decode_sandbox_restarts",
            "Decode worker pools replaced, by reason (crash, timeout).",
            ["reason"],
            registry=self.registry,
        )
        self.rpcs = Counter(
            "lightbox_grpc_requests",
            "gRPC calls answered, by method and code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "lightbox_grpc_request_duration_seconds",
            "Time from a gRPC call's start to its end, by method.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._cache_seen: dict[str, tuple[int, int]] = {}
        self._request_children: dict[tuple[str, str | None, int | None], tuple[Counter, Histogram]] = {}
        # requests of this event-loop turn, counted together at its end (see request_started)
        self._finished: list[FinishedRequest] = []
        self._in_flight_now = 0
        self._in_flight_written: int | None = None
        self._caches: Mapping[str, HitCounting] = {}
        self._turn_flush_scheduled = False

    # -- requests (called by the middleware) ------------------------------------------------
    def request_started(self, in_flight: int) -> None:
        """A request began; ``in_flight`` requests of this process are running now.

        With several workers every metric write goes to a memory-mapped file (prometheus-client's
        multiprocess mode): six per request (in flight up and down, the counter, the histogram's bucket
        and sum, the cache counters) were ~7 % of a cached lookup. The middleware's requests are
        counted together once per event-loop turn instead: the in-flight gauge is set to the turn's
        final count, each label set's counter goes up once, the caches are synced once. A scrape is a
        later request, so it always sees the turns before it.
        """
        self._in_flight_now = in_flight
        self._flush_at_turn_end()

    def request_finished(
        self,
        in_flight: int,
        request: FinishedRequest,
        caches: Mapping[str, HitCounting],
    ) -> None:
        """A request ended (see :meth:`request_started`): counted at the end of this loop turn."""
        self._in_flight_now = in_flight
        self._finished.append(request)
        self._caches = caches
        self._flush_at_turn_end()

    def _flush_at_turn_end(self) -> None:
        if not self._turn_flush_scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no asyncio loop (another backend, a plain thread): written at once
                self.flush_turn()
                return
            self._turn_flush_scheduled = True
            loop.call_soon(self.flush_turn)

    def flush_turn(self) -> None:
        """Write what this loop turn's requests counted."""
        self._turn_flush_scheduled = False
        finished, self._finished = self._finished, []
        if self._in_flight_now != self._in_flight_written:  # a write only when the count changed
            self.in_flight.set(self._in_flight_now)
            self._in_flight_written = self._in_flight_now
        counted: dict[Counter, int] = {}
        for request in finished:
            counter = self.observe_request(*request, count=False)
            counted[counter] = counted.get(counter, 0) + 1
        for counter, number in counted.items():
            counter.inc(number)
        self.sync_caches(self._caches)

    def observe_request(
        self,
        method: str,
        route: str | None,
        status: int | None,
        seconds: float,
        error: str | None = None,
        count: bool = True,
    ) -> Counter:
        """One finished request; a failed upload also counts as a rejection, by its error kind."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:  # first request of this kind: resolve (and bound) the labels once
            labels = (
                method if method in KNOWN_METHODS else "other",
                route or "unmatched",
                str(status) if status is not None else "none",
            )
            children = (self.requests.labels(*labels), self.request_seconds.labels(*labels))
            if len(self._request_children) < MAX_CACHED_LABEL_SETS:
                self._request_children[key] = children
        if count:
            children[0].inc()
        children[1].observe(seconds)
        if error is not None and status is not None and status >= 400:
            self.request_errors.labels(error).inc()
        if (method, route) in UPLOAD_ROUTES and (status is None or status >= 400):
            self.reject_upload(error or ("no_response" if status is None else status_kind(status)))
        return children[0]

    def observe_rpc(self, method: str, code: str, seconds: float, error: str | None = None) -> None:
        """One finished gRPC call (``method`` is one of the service's few RPC names: bounded labels)."""
        self.rpcs.labels(method, code).inc()
        self.rpc_seconds.labels(method).observe(seconds)
        if error is not None and code != "OK":
            self.request_errors.labels(error).inc()
        if method == "Upload" and code != "OK":
            self.reject_upload(error or code.lower())

    def count_upload(self, size: int, created: bool) -> None:
        """One file uploaded: stored (counted with its bytes), or identical to one stored before."""
        if created:
            self.uploads.inc()
            self.upload_bytes.inc(size)
        else:
            self.upload_duplicates.inc()

    def reject_upload(self, reason: str) -> None:
        self.upload_rejections.labels(reason).inc()

    def swept(self, blobs: int) -> None:
        """The sweeper removed ``blobs`` orphaned blobs."""
        self.swept_blobs.inc(blobs)

    def sandbox_replaced(self, reason: str) -> None:
        """The decode sandbox replaced its worker pool (a decoder crashed or overran its time)."""
        self.sandbox_restarts.labels(reason).inc()

    # -- caches -----------------------------------------------------------------------------
    def sync_caches(self, caches: Mapping[str, HitCounting]) -> None:
        """Add what each cache counted since the last sync (cheap: two integer reads per cache)."""
        for name, cache in caches.items():
            hits, misses = cache.hits, cache.misses
            seen_hits, seen_misses = self._cache_seen.get(name, (0, 0))
            if hits > seen_hits:
                self.cache_hits.labels(name).inc(hits - seen_hits)
            if misses > seen_misses:
                self.cache_misses.labels(name).inc(misses - seen_misses)
            self._cache_seen[name] = (hits, misses)

    # -- exposition -------------------------------------------------------------------------
    def exposition(self, *extra: Collector) -> bytes:
        """The text format; in multiprocess mode, the sum over every worker's files. Blocking (reads files)."""
        if multiprocess_dir():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            text = generate_latest(registry)
        else:
            text = generate_latest(self.registry)
        if extra:
            registry = CollectorRegistry()
            for collector in extra:
                registry.register(collector)
            text += generate_latest(registry)
        return text


def mark_worker_stopped() -> None:
    """Drop this worker's live gauges (in-flight) from the multiprocess sum when it stops."""
    if multiprocess_dir():
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class IndexSizeCollector(Collector):
    """``lightbox_index_entries{level=...}`` from counts the index gave at this scrape, and
    ``lightbox_storage_missing_files`` (indexed files missing from storage) when known."""

    def __init__(self, counts: Mapping[str, int], missing: int | None = None) -> None:
        self.counts = counts
        self.missing = missing

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            "lightbox_index_entries", "Entries in the metadata index, by level.", labels=["level"]
        )
        for level, count in sorted(self.counts.items()):
            family.add_metric([level], count)
        yield family
        if self.missing is not None:
            yield GaugeMetricFamily(
                "lightbox_storage_missing_files",
                "Indexed files whose bytes are missing from storage (found at start-up or by a request).",
                value=self.missing,
            )


class StorageSpaceCollector(Collector):
    """``lightbox_storage_{free,capacity}_bytes`` of the file system holding the storage folder, at each scrape.

    Free means available to this (unprivileged) process: ``f_bavail``, not ``f_bfree``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def collect(self) -> Any:
        try:
            stats = os.statvfs(self.root)
        except OSError:
            return  # a storage outage shows in /readyz and the error metrics, not as a scrape failure
        free = GaugeMetricFamily(
            "lightbox_storage_free_bytes", "Bytes available to the service on the storage file system."
        )
        free.add_metric([], stats.f_bavail * stats.f_frsize)
        yield free
        capacity = GaugeMetricFamily("lightbox_storage_capacity_bytes", "Size of the storage file system.")
        capacity.add_metric([], stats.f_blocks * stats.f_frsize)
        yield capacity


async def scrape(state: Any, timeout: float) -> bytes:
    """Everything ``GET /metrics`` shows for the app whose ``app.state`` is ``state``."""
    metrics: Metrics = state.metrics
    metrics.flush_turn()  # what this turn's requests counted so far, too
    metrics.sync_caches(getattr(state, "caches", {}))
    extra: list[Collector] = []
    index_counts: IndexCounts | None = getattr(state, "index_counts", None)
    missing_files: Callable[[], int] | None = getattr(state, "missing_files", None)
    if index_counts is not None:
        try:
            with anyio.fail_after(timeout):
                extra.append(IndexSizeCollector(await index_counts(), missing_files() if missing_files else None))
        except Exception:
            log.warning("the index did not report its size for /metrics", exc_info=True)
    storage_root: Path | None = getattr(state, "storage_root", None)
    if storage_root is not None:
        extra.append(StorageSpaceCollector(storage_root))
    return await to_thread.run_sync(metrics.exposition, *extra)


# -- one-line hooks for routes and services ---------------------------------------------------
def metrics_of(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def record_upload_stored(request: Request, size: int) -> None:
    """A file was stored: count it and its bytes."""
    metrics = metrics_of(request)
    metrics.uploads.inc()
    metrics.upload_bytes.inc(size)


def record_upload_duplicate(request: Request) -> None:
    """An upload matched a stored file and nothing new was stored."""
    metrics_of(request).upload_duplicates.inc()


def record_upload_rejected(request: Request, reason: str) -> None:
    """One file of a request was refused.

    A request to an upload route that fails as a whole (4xx/5xx, or no response) is counted once,
    by the middleware, with its error kind; call this only for files refused inside a request that
    otherwise succeeds (a bulk upload answering 202), once per refused file.
    """
    metrics_of(request).reject_upload(reason)


async def timed_render(request: Request, work: Awaitable[T]) -> T:
    """``image = await timed_render(request, renders.render(...))``: count and time one render."""
    return await timed(metrics_of(request), work)


async def timed(metrics: Metrics, work: Awaitable[T]) -> T:
    """:func:`timed_render` for a transport that holds the app's metrics (gRPC)."""
    started = time.perf_counter()
    outcome = "cancelled"
    try:
        result = await work
        outcome = "ok"
        return result
    except Exception as exc:
        outcome = error_kind(exc)
        raise
    finally:
        metrics.renders.labels(outcome).inc()
        metrics.render_seconds.labels(outcome).observe(time.perf_counter() - started)
