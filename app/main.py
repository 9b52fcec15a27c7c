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
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from fastapi import FastAPI

from app import __version__
from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.middleware import InFlight, ObservedFastAPI
from app.api.openapi import install_openapi
from app.api.routes import files, health, upload
from app.config import Settings, settings_from_environment
from app.errors import IndexNeedsWrite
from app.index.sql import SqlInstanceIndex
from app.index.urls import default_database_url
from app.logging import configure_logging
from app.metrics import Metrics, mark_worker_stopped
from app.readiness import StorageWritable, all_of
from app.services.instances import InstanceService
from app.services.reindex import reconcile
from app.services.renders import RenderService
from app.storage.local import LocalBlobStore

if TYPE_CHECKING:
    from app.dimse.listener import DimseListener
    from app.dimse.scp import PrincipalResolver as UserResolver

log = logging.getLogger("lightbox")

SHUTDOWN_CLEANUP_SECONDS = 5  # after LIGHTBOX_SHUTDOWN_TIMEOUT: cancelled requests undo their partial work


def database_url(settings: Settings) -> str:
    """``LIGHTBOX_DATABASE_URL``, or the embedded SQLite file next to the stored files."""
    return settings.database_url or default_database_url(settings.storage_dir)


async def start_dimse(app: FastAPI, settings: Settings, instances: InstanceService) -> DimseListener | None:
    """The DICOM network listener, when ``LIGHTBOX_DIMSE_PORT`` is set (pynetdicom imported only then)."""
    if settings.dimse_port is None:
        return None
    from app.dimse.listener import DimseListener
    from app.dimse.scp import single_user

    listener = DimseListener(settings, instances, app.state.resolve_user or single_user, app.state.metrics)
    await listener.start()
    app.state.readiness_checks["dimse"] = listener.check
    return listener


def create_app(settings: Settings | None = None, resolve_user: UserResolver | None = None) -> FastAPI:
    """Build the service; without ``settings``, from the ``LIGHTBOX_*`` environment, with logging configured.

    ``resolve_user`` turns the Lightbox user a DICOM peer acts as (``LIGHTBOX_DIMSE_PEERS``) into a
    Principal; by default (single-user mode) every peer is the local administrator.
    """
    if settings is None:
        settings = settings_from_environment()
        configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = LocalBlobStore(settings.storage_dir)
        removed = await to_thread.run_sync(store.prepare)
        if removed:
            log.warning("removed %d partial upload(s) left by an earlier stop", removed)
        try:
            index = await SqlInstanceIndex.open(database_url(settings))
        except IndexNeedsWrite as exc:
            app.state.startup_refusal = f"lightbox cannot start: {exc.message}"  # one line, no traceback
            raise
        app.state.index = index
        app.state.instances = instances = InstanceService(settings, store, index)
        await reconcile(instances, instances.guard)
        app.state.renders = RenderService(settings, instances)
        # this index's folder (marker, not empty), then a real write: either failing takes us out of traffic
        app.state.readiness_checks["storage"] = all_of(instances.guard.check, StorageWritable(store.staging))
        app.state.readiness_checks["index"] = index.ping
        app.state.index_counts = index.counts
        app.state.missing_files = instances.guard.missing_count
        app.state.caches["headers"] = app.state.instances.header_cache
        app.state.caches["renders"] = app.state.renders.cache
        app.state.caches["answers"] = app.state.instances.answer_cache
        dimse = await start_dimse(app, settings, instances)
        try:
            yield
            if not await app.state.in_flight.drained(timeout=SHUTDOWN_CLEANUP_SECONDS):
                log.warning("stopping with requests still running: their staged files are removed at next start")
        finally:
            if dimse is not None:
                await dimse.stop()
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
    app.state.resolve_user = resolve_user
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
