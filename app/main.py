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

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from app import __version__
from app.api.blob_holding import HoldBlobs
from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.middleware import InFlight, ObservedFastAPI
from app.api.openapi import install_openapi
from app.api.routes import admin, audit, auth, dicomweb, files, grants, health, shares, upload
from app.api.web import install_web
from app.auth.credentials import Authenticator
from app.config import Settings, cors_list, exposure_problem, settings_from_environment
from app.errors import IndexNeedsWrite
from app.index.access import AccessStore
from app.index.audit import SqlAuditLog
from app.index.sql import SqlInstanceIndex
from app.index.urls import default_database_url
from app.logging import configure_logging
from app.metrics import Metrics, mark_worker_stopped
from app.readiness import StorageWritable, all_of
from app.services.audit import AuditService
from app.services.dicomweb import DicomWebService
from app.services.grants import GrantService
from app.services.instances import InstanceService
from app.services.keys import KeyService
from app.services.reindex import reconcile
from app.services.renders import RenderService
from app.services.shares import ShareService
from app.services.study_archive import StudyArchiveService
from app.services.sweeper import Sweeper
from app.services.users import UserService
from app.storage.stores import open_storage
from app.threads import worker_threads
from app.tracing import install_tracing, tracing_from_environment

if TYPE_CHECKING:
    from app.dimse.listener import DimseListener

log = logging.getLogger("lightbox")

SHUTDOWN_CLEANUP_SECONDS = 5  # after LIGHTBOX_SHUTDOWN_TIMEOUT: cancelled requests undo their partial work


def database_url(settings: Settings) -> str:
    """``LIGHTBOX_DATABASE_URL``, or the embedded SQLite file next to the stored files."""
    return settings.database_url or default_database_url(settings.storage_dir)


async def _wire_access(app: FastAPI, settings: Settings, index: SqlInstanceIndex) -> None:
    """Users, keys, grants, shares and the credential resolver; the first start with auth creates ``admin``."""
    store, audit = AccessStore(index.engine), app.state.audit
    app.state.users = UserService(settings, store, audit)
    app.state.keys = KeyService(store, audit)
    app.state.grants = GrantService(store, index, audit)
    app.state.shares = ShareService(settings, store, index, audit)
    app.state.authenticator = Authenticator(app.state.users, app.state.keys, app.state.shares)
    generated = await app.state.users.bootstrap()
    if generated:
        announce_admin_password(generated)


def announce_admin_password(password: str) -> None:
    """Printed once on stderr, never through logging (so never in the JSON logs)."""
    print(
        f"lightbox: created the administrator 'admin' with the password {password} "
        "(shown only now; change it with PATCH /admin/users/admin)",
        file=sys.stderr,
        flush=True,
    )


def start_sweeper(app: FastAPI, settings: Settings) -> asyncio.Task[None] | None:
    """This process's sweeper loop (claim-gated: one replica sweeps at a time); None when turned off."""
    index, instances = app.state.index, app.state.instances
    if settings.sweep_interval_seconds <= 0 or index.read_only:
        return None
    sweeper = Sweeper(
        instances.store, index, instances.files, instances.guard.check, on_removed=app.state.metrics.swept
    )
    return asyncio.create_task(sweeper.run(settings.sweep_interval_seconds, settings.sweep_min_age_seconds))


async def start_dimse(app: FastAPI, settings: Settings) -> DimseListener | None:
    """The DICOM network listener, when ``LIGHTBOX_DIMSE_PORT`` is set (pynetdicom imported only then).

    A peer acts as the Lightbox user ``LIGHTBOX_DIMSE_PEERS`` names, resolved by the users service
    (single-user mode: the local administrator).
    """
    if settings.dimse_port is None:
        return None
    from app.dimse.listener import DimseListener

    listener = DimseListener(
        settings, app.state.instances, app.state.renders, app.state.users.acting_as, app.state.metrics
    )
    await listener.start()
    app.state.readiness_checks["dimse"] = listener.check
    return listener


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; without ``settings``, from the ``LIGHTBOX_*`` environment, with logging configured."""
    tracing = None
    if settings is None:
        settings = settings_from_environment()
        configure_logging(settings)
        tracing = tracing_from_environment()
    problem = exposure_problem(settings)
    if problem:  # rule 7, also for a bare `uvicorn app.main:app` (the `lightbox` command exits 2 earlier)
        raise RuntimeError(problem)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the executor of app.threads.run_blocking (the loop shuts it down when it closes)
        asyncio.get_running_loop().set_default_executor(worker_threads())
        storage = open_storage(settings)
        removed = await to_thread.run_sync(storage.prepare)
        if removed:
            log.warning("removed %d partial upload(s) left by an earlier stop", removed)
        try:
            index = await SqlInstanceIndex.open(database_url(settings))
        except IndexNeedsWrite as exc:
            app.state.startup_refusal = f"lightbox cannot start: {exc.message}"  # one line, no traceback
            raise
        if app.state.tracing is not None:
            for engine in index.traced_engines():
                app.state.tracing.instrument_engine(engine)
        app.state.index = index
        app.state.audit = AuditService(
            SqlAuditLog(index.engine), settings.audit_flush_seconds, settings.audit_queue_records
        )
        app.state.instances = instances = InstanceService(
            settings, storage.store, index, app.state.audit, storage.files
        )
        await reconcile(instances, instances.guard)
        app.state.renders = RenderService(settings, instances, app.state.metrics.sandbox_replaced)
        await _wire_access(app, settings, index)
        app.state.dicomweb = DicomWebService(settings, instances, app.state.renders)
        app.state.archives = StudyArchiveService(instances)
        app.state.caches["metadata"] = app.state.dicomweb.metadata_cache
        app.state.storage_root = storage.local_root  # free space for /metrics (disk alerts)
        # this index's folder (marker, not empty) or bucket (answers), then a real write to staging:
        # either failing takes us out of traffic
        app.state.readiness_checks["storage"] = all_of(instances.guard.check, StorageWritable(storage.staging))
        app.state.readiness_checks["index"] = index.ping
        app.state.index_counts = index.counts
        app.state.missing_files = instances.guard.missing_count
        app.state.caches["headers"] = app.state.instances.header_cache
        app.state.caches["renders"] = app.state.renders.cache
        app.state.caches["answers"] = app.state.instances.answer_cache
        if storage.cache is not None:
            app.state.caches["blobs"] = storage.cache
        await app.state.audit.start()
        sweeping = start_sweeper(app, settings)
        dimse = None
        grpc_server = None
        try:
            if settings.grpc_port is not None:  # imported only when used: grpc loads a native library
                from app.grpc.server import start_grpc

                grpc_server = await start_grpc(app.state, settings)
            dimse = await start_dimse(app, settings)
            yield
            if grpc_server is not None:
                await grpc_server.stop(SHUTDOWN_CLEANUP_SECONDS)
                grpc_server = None
            if not await app.state.in_flight.drained(timeout=SHUTDOWN_CLEANUP_SECONDS):
                log.warning("stopping with requests still running: their staged files are removed at next start")
        finally:
            if sweeping is not None:
                sweeping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeping
            if dimse is not None:
                await dimse.stop()  # no association may still be recording when the audit trail closes
            if grpc_server is not None:
                await grpc_server.stop(None)
            await app.state.audit.close()  # after the last request: every record of a clean stop is written
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
        # Tracing is app.tracing's (its own provider, the server span outside every layer) and metrics are
        # Prometheus' (app.metrics). FastAPI's native OpenTelemetry would add a second server span as soon as
        # a global provider were set, and looks the global providers up on every request (~5 % of a lookup).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    install_tracing(app, tracing)
    app.state.metrics = Metrics()
    app.state.in_flight = InFlight()
    app.state.readiness_checks = {}  # name -> async check; see app.readiness
    app.state.caches = {}  # name -> object with hits/misses; see app.metrics
    install_error_handlers(app)
    app.add_middleware(HoldBlobs)  # blob-cache copies a request reads stay until its response is sent
    if origins := cors_list(settings.cors_origins):  # browser viewers on another origin (OHIF, Stone)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-ID"],
            expose_headers=["Content-Type", "Content-Length", "Content-Location", "Warning", "X-Request-ID"],
            max_age=600,
        )
    install_docs(app)
    install_openapi(app)
    app.include_router(upload.router)
    app.include_router(files.router)
    app.include_router(health.router)
    for router in (auth.router, admin.router, grants.router, shares.router):
        app.include_router(router)
    app.include_router(dicomweb.router(), prefix=settings.dicomweb_root)
    app.include_router(audit.router)
    install_web(app)
    return app


def __getattr__(name: str) -> Any:
    """``app.main.app``: built once, on first access (uvicorn looks it up more than once)."""
    if name == "app":
        built = globals()["app"] = create_app()
        return built
    raise AttributeError(name)
