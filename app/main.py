"""Application factory: ``create_app(settings)`` wires stores and services into a FastAPI app.

``uvicorn app.main:app`` works too: ``app`` is built on first access (PEP 562), from the
environment, so importing this module has no side effects.
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
from app.api.routes import audit, files, health, upload
from app.config import Settings
from app.index.audit import SqlAuditLog
from app.index.sql import SqlInstanceIndex
from app.index.urls import default_database_url
from app.metrics import Metrics, mark_worker_stopped
from app.readiness import StorageWritable
from app.services.audit import AuditService
from app.services.instances import InstanceService
from app.services.reindex import reconcile
from app.services.renders import RenderService
from app.storage.local import LocalBlobStore

log = logging.getLogger("lightbox")

SHUTDOWN_CLEANUP_SECONDS = 5  # after LIGHTBOX_SHUTDOWN_TIMEOUT: cancelled requests undo their partial work


def database_url(settings: Settings) -> str:
    """``LIGHTBOX_DATABASE_URL``, or the embedded SQLite file next to the stored files."""
    return settings.database_url or default_database_url(settings.storage_dir)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; ``settings`` defaults to the ``LIGHTBOX_*`` environment."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = LocalBlobStore(settings.storage_dir)
        removed = await to_thread.run_sync(store.prepare)
        if removed:
            log.warning("removed %d partial upload(s) left by an earlier stop", removed)
        index = await SqlInstanceIndex.open(database_url(settings))
        app.state.index = index
        app.state.audit = AuditService(
            SqlAuditLog(index.engine), settings.audit_flush_seconds, settings.audit_queue_records
        )
        app.state.instances = InstanceService(settings, store, index, app.state.audit)
        await reconcile(app.state.instances)
        app.state.renders = RenderService(settings, app.state.instances)
        app.state.readiness_checks["storage"] = StorageWritable(store.staging)
        app.state.readiness_checks["index"] = index.ping
        app.state.index_counts = index.counts
        app.state.caches["headers"] = app.state.instances.header_cache
        app.state.caches["renders"] = app.state.renders.cache
        app.state.caches["answers"] = app.state.instances.answer_cache
        await app.state.audit.start()
        try:
            yield
            if not await app.state.in_flight.drained(timeout=SHUTDOWN_CLEANUP_SECONDS):
                log.warning("stopping with requests still running: their staged files are removed at next start")
        finally:
            await app.state.audit.close()  # after the last request: every record of a clean stop is written
            await index.close()
            await to_thread.run_sync(app.state.renders.close)
            mark_worker_stopped()

    app = ObservedFastAPI(
        title="Lightbox",
        version=__version__,
        summary="A DICOM file service: upload, header lookups and browser-ready renders.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
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
    app.include_router(audit.router)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return create_app()
    raise AttributeError(name)
