"""Application factory: ``create_app(settings)`` wires stores and services into a FastAPI app.

``uvicorn app.main:app`` works too: ``app`` is built on first access (PEP 562), from the
environment, so importing this module has no side effects.

An app built from the environment (``create_app()``: ``uvicorn app.main:app``, ``uvicorn --factory
app.main:create_app``, every ``lightbox`` worker) is the one this process serves, so it also checks
the settings (one line and exit code 2 when one is invalid) and configures logging
(``LIGHTBOX_LOG_FORMAT``, ``LIGHTBOX_LOG_LEVEL``, request ids, redaction) for itself and uvicorn.
An app given its ``Settings`` leaves logging to its embedder.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI

from app import __version__
from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.middleware import InFlight, ObservedFastAPI
from app.api.openapi import install_openapi
from app.api.routes import files, health, upload
from app.config import Settings, settings_from_environment
from app.index.sql import SqlInstanceIndex
from app.index.urls import default_database_url
from app.logging import configure_logging
from app.metrics import Metrics, mark_worker_stopped
from app.readiness import StorageWritable
from app.services.instances import InstanceService
from app.services.reindex import reconcile
from app.services.renders import RenderService
from app.storage.local import LocalBlobStore
from app.tracing import install_tracing, tracing_from_environment

log = logging.getLogger("lightbox")

SHUTDOWN_CLEANUP_SECONDS = 5  # after LIGHTBOX_SHUTDOWN_TIMEOUT: cancelled requests undo their partial work


def database_url(settings: Settings) -> str:
    """``LIGHTBOX_DATABASE_URL``, or the embedded SQLite file next to the stored files."""
    return settings.database_url or default_database_url(settings.storage_dir)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; without ``settings``, from the ``LIGHTBOX_*`` environment, with logging configured."""
    tracing = None
    if settings is None:
        settings = settings_from_environment()
        configure_logging(settings)
        tracing = tracing_from_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = LocalBlobStore(settings.storage_dir)
        removed = await to_thread.run_sync(store.prepare)
        if removed:
            log.warning("removed %d partial upload(s) left by an earlier stop", removed)
        index = await SqlInstanceIndex.open(database_url(settings))
        if app.state.tracing is not None:
            app.state.tracing.instrument_engine(index.engine.sync_engine)
        app.state.index = index
        app.state.instances = InstanceService(settings, store, index)
        await reconcile(app.state.instances)
        app.state.renders = RenderService(settings, app.state.instances, app.state.metrics.sandbox_replaced)
        app.state.storage_root = store.root  # free space for /metrics (disk alerts)
        app.state.readiness_checks["storage"] = StorageWritable(store.staging)
        app.state.readiness_checks["index"] = index.ping
        app.state.index_counts = index.counts
        app.state.caches["headers"] = app.state.instances.header_cache
        app.state.caches["renders"] = app.state.renders.cache
        app.state.caches["answers"] = app.state.instances.answer_cache
        try:
            yield
            if not await app.state.in_flight.drained(timeout=SHUTDOWN_CLEANUP_SECONDS):
                log.warning("stopping with requests still running: their staged files are removed at next start")
        finally:
            await index.close()
            await to_thread.run_sync(app.state.renders.close)
            mark_worker_stopped()
            if app.state.tracing is not None:
                await to_thread.run_sync(app.state.tracing.shutdown)

    app = ObservedFastAPI(
        title="Lightbox",
        version=__version__,
        summary="A DICOM file service: upload, header lookups and browser-ready renders.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_tracing(app, tracing)
    app.state.metrics = Metrics()
    app.state.in_flight = InFlight()
    app.state.readiness_checks = {}  # name -> async check; see app.readiness
    app.state.caches = {}  # name -> object with hits/misses; see app.metrics
    install_error_handlers(app)
    install_docs(app)
    install_openapi(app)
    app.include_router(upload.router)
    app.include_router(files.router)
    app.include_router(health.router)
    return app


def __getattr__(name: str) -> Any:
    """``app.main.app``: built once, on first access (uvicorn looks it up more than once)."""
    if name == "app":
        built = globals()["app"] = create_app()
        return built
    raise AttributeError(name)
