"""The ``lightbox`` command: start the service (``lightbox`` or ``lightbox serve``), ``import`` files into
a running service, ``check`` the index against the storage folder, ``reindex`` the storage folder
(or ``--prune-missing`` rows whose file is gone), ``audit export`` the audit trail, ``migrate`` the
index and exit (deploy pipelines), ``sweep`` orphaned blobs now.

It is the production entry point: it validates every setting before anything starts (exit code 2
and one line naming the variable), configures JSON logs for uvicorn and the app, runs
``LIGHTBOX_WORKERS`` worker processes, gives in-flight requests ``LIGHTBOX_SHUTDOWN_TIMEOUT``
seconds after SIGTERM, and manages prometheus-client's multiprocess folder so ``/metrics`` sums
every worker.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from app import access_cli
from app.config import Settings, settings_from_environment
from app.errors import LightboxError
from app.http_writes import CoalescingHttpToolsProtocol
from app.listeners import ReusePortListener, reuse_port_supported
from app.logging import configure_logging, log_config
from app.metrics import MULTIPROC_ENV

if TYPE_CHECKING:
    from app.storage.local import LocalBlobStore

log = logging.getLogger("lightbox")
DEFAULT_URL = "http://127.0.0.1:8080"
APP_FACTORY = "app.main:create_app"


@contextmanager
def multiprocess_metrics(workers: int) -> Iterator[None]:
    """With several workers, give them a fresh shared metrics folder (prometheus-client multiprocess mode).

    An operator's own ``PROMETHEUS_MULTIPROC_DIR`` is kept but emptied of the previous run's files,
    as prometheus-client requires; otherwise a temporary folder is made and removed afterwards.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if workers == 1 and not given:
        yield
        return
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield
        return
    folder = Path(tempfile.mkdtemp(prefix="lightbox-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


async def _migrate(settings: Settings) -> None:
    """Bring the index to the newest schema once, before any worker starts (exit 2 when it cannot be);
    the first start with auth creates `admin` here, once."""
    from app.errors import IndexNeedsWrite
    from app.index.access import AccessStore
    from app.index.audit import SqlAuditLog
    from app.index.sql import SqlInstanceIndex
    from app.main import announce_admin_password, database_url
    from app.services.audit import AuditService
    from app.services.users import UserService

    if settings.database_url is None:  # the default SQLite index lives in the storage folder
        settings.storage_dir.mkdir(parents=True, exist_ok=True)
    try:
        index = await SqlInstanceIndex.open(database_url(settings))
    except IndexNeedsWrite as exc:
        print(f"lightbox: cannot start: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
    audit = AuditService(SqlAuditLog(index.engine))
    try:
        generated = await UserService(settings, AccessStore(index.engine), audit).bootstrap()
    finally:
        await audit.close()
        await index.close()
    if generated:
        announce_admin_password(generated)


async def _migrate_only(settings: Settings) -> int:
    """``lightbox migrate``: the schema at head (and ``admin`` on a first start with auth), then exit.

    Replicas (or pipelines) starting together serialise on a PostgreSQL advisory lock
    (:data:`app.index.migrate.MIGRATION_LOCK`): one migrates, the others find the schema at head.
    """
    from app.index.migrate import pending
    from app.index.sql import SqlInstanceIndex
    from app.main import database_url

    await _migrate(settings)
    index = await SqlInstanceIndex.open(database_url(settings))  # a no-op now: reads the revision
    try:
        current, _ = await pending(index.engine)
    finally:
        await index.close()
    print(f"index schema at revision {current} (head)")
    return 0


async def _sweep(settings: Settings, min_age: float | None, wait_seconds: float = 60.0) -> int:
    """``lightbox sweep [--min-age SECONDS]``: one pass now (waiting for a replica that is sweeping); counts only.

    The folder is judged first without writing anything (an unmounted or foreign folder is never
    "all orphans"); an object store must answer. Staging folders are never touched.
    """
    from app.index.sql import SqlInstanceIndex
    from app.main import database_url
    from app.services.storage_guard import ObjectStoreGuard, StorageGuard
    from app.services.sweeper import Sweeper
    from app.storage.local import LocalBlobStore
    from app.storage.stores import open_storage

    storage = open_storage(settings)
    index = await SqlInstanceIndex.open(database_url(settings))
    try:
        if isinstance(storage.store, LocalBlobStore):
            found = await StorageGuard(storage.store, index).look()
            if found.problem is not None:
                print(f"lightbox sweep: refusing to sweep: {found.problem}", file=sys.stderr)
                return 2
        else:
            await ObjectStoreGuard(storage.store).check()
        sweeper = Sweeper(storage.store, index, storage.cache)
        age = settings.sweep_min_age_seconds if min_age is None else min_age
        deadline = time.monotonic() + wait_seconds
        while (report := await sweeper.sweep(age)) is None:
            if time.monotonic() > deadline:
                print("lightbox sweep: another replica kept sweeping; nothing done", file=sys.stderr)
                return 1
            await asyncio.sleep(0.5)
    except LightboxError as exc:
        print(f"lightbox sweep: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await index.close()
    print(f"swept: {report.summary()}")
    return 1 if report.failed else 0


WORKER_HEALTHCHECK_SECONDS = 30


def serve(settings: Settings) -> None:
    """Run ``settings.workers`` uvicorn workers; each builds the app from the same ``LIGHTBOX_*`` environment."""
    configure_logging(settings)
    log.info(
        "starting %d worker(s) on %s:%d (graceful shutdown %d s)",
        settings.workers,
        settings.host,
        settings.port,
        settings.shutdown_timeout,
    )
    asyncio.run(_migrate(settings))  # once, before the workers start; theirs are then no-ops
    options: dict[str, Any] = {
        "factory": True,
        "http": CoalescingHttpToolsProtocol,  # a small response's head and body in one socket write
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "log_config": log_config(settings),
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        "timeout_keep_alive": settings.keep_alive_seconds,
        # uvicorn's default 5 s killed workers still importing on a loaded host, in a loop (a worker
        # answers pings from a thread, so a live one is late only when starved of CPU)
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
    }
    with multiprocess_metrics(settings.workers):
        if settings.workers > 1 and reuse_port_supported():
            _serve_workers(uvicorn.Config(APP_FACTORY, **options), settings)
        else:
            uvicorn.run(APP_FACTORY, **options)


def _serve_workers(config: uvicorn.Config, settings: Settings) -> None:
    """uvicorn's supervisor, each worker listening on a socket of its own (see :mod:`app.listeners`)."""
    try:
        listener = ReusePortListener.bind_to(settings.host, settings.port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc.strerror or exc)
        raise SystemExit(1) from None
    with listener:
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        log.info("listening on http://%s:%d (each worker on a socket of its own)", host, listener.getsockname()[1])
        Multiprocess(config, sockets=[listener]).run()


def import_paths(paths: list[Path], url: str, workers: int) -> int:
    """Upload files, folders and ZIPs; exit status 1 if any file failed. With auth, ``LIGHTBOX_TOKEN``
    (an API key with scope write) is sent as the bearer token; it is read from the environment so it
    never appears in a process list."""
    from app.importer import Importer

    importer = Importer(url, workers=workers, token=os.environ.get("LIGHTBOX_TOKEN") or None)
    try:
        stats = importer.run(paths)
    except FileNotFoundError as exc:
        print(f"lightbox import: {exc}", file=sys.stderr)
        return 2
    print(importer.summary())
    return 1 if stats.failures else 0


async def _check(settings: Settings) -> int:
    """``lightbox check``: index and storage compared; exit status 1 when anything disagrees."""
    from app.index.sql import SqlInstanceIndex
    from app.main import database_url
    from app.services.storage_guard import StorageGuard

    store = _store(settings)
    index = await SqlInstanceIndex.open(database_url(settings))
    try:
        found = await StorageGuard(store, index).look()
    finally:
        await index.close()
    audit = found.audit
    print(f"storage folder {store.root}: {audit.files} stored file(s); index: {audit.rows} instance(s)")
    if found.problem is not None:
        print(f"storage looks wrong: {found.problem}")
    else:
        print(f"storage marker {found.marker or '(none yet: written at the next start)'}")
    print(f"{len(audit.missing)} index row(s) without a file (answered 503; `lightbox reindex --prune-missing`):")
    for name in sorted(audit.missing):
        print(f"  {name}")
    print(f"{len(audit.unindexed)} file(s) without an index row (indexed at the next start, or `lightbox reindex`):")
    for name in sorted(audit.unindexed):
        print(f"  {name}")
    return 1 if found.problem or audit.missing or audit.unindexed else 0


async def _prune_missing(settings: Settings, yes: bool) -> int:
    """``lightbox reindex --prune-missing [--yes]``: list, then (with ``--yes``) remove rows whose file is gone."""
    from app.index.audit import SqlAuditLog
    from app.index.sql import SqlInstanceIndex
    from app.main import database_url
    from app.services.audit import AuditService
    from app.services.instances import InstanceService
    from app.services.reindex import prune_missing
    from app.services.storage_guard import StorageGuard

    index = await SqlInstanceIndex.open(database_url(settings))
    audit = AuditService(SqlAuditLog(index.engine))
    try:
        store = _store(settings)
        service = InstanceService(settings, store, index, audit)
        found = await StorageGuard(store, index).look()
        if found.problem is not None:
            print(f"lightbox reindex: refusing to prune: {found.problem}", file=sys.stderr)
            return 2
        missing = found.audit.missing
        if not missing:
            print("no index row is missing its file: nothing to prune")
            return 0
        print(f"{len(missing)} index row(s) whose file is missing from {settings.storage_dir}:")
        for name in sorted(missing):
            print(f"  {name}")
        if not yes:
            print("nothing removed: run again with --yes to remove these rows (their owners, times and names go)")
            return 1
        removed = await prune_missing(service, missing)
        print(f"removed {len(removed)} index row(s)")
        return 0
    finally:
        await audit.close()
        await index.close()


def _store(settings: Settings) -> LocalBlobStore:
    """The storage folder (check, reindex and prune read stored names from it); exit 2 with an object store."""
    from app.config import s3_location
    from app.storage.local import LocalBlobStore

    if s3_location(settings) is not None:
        print(
            "lightbox: this command works on a storage folder; with s3:// storage, bucket and index are "
            "compared by the sweeper",
            file=sys.stderr,
        )
        raise SystemExit(2)
    store = LocalBlobStore(settings.storage_dir, settings.staging_dir)
    store.prepare()
    return store


async def _reindex(settings: Settings) -> int:
    from app.index.audit import SqlAuditLog
    from app.index.sql import SqlInstanceIndex
    from app.main import database_url
    from app.services.audit import AuditService
    from app.services.instances import InstanceService
    from app.services.reindex import ReindexReport, reindex
    from app.services.storage_guard import STORAGE_ID, StorageGuard

    store = _store(settings)
    index = await SqlInstanceIndex.open(database_url(settings))
    found = await StorageGuard(store, index).look()
    if found.problem is not None and found.audit.rows:
        await index.close()
        print(
            f"lightbox reindex: refusing to rebuild (it would forget {found.audit.rows} row(s)): {found.problem}",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()

    def progress(number: int, total: int, report: ReindexReport) -> None:
        if number == total or number % 25 == 0:
            rate = number / max(time.monotonic() - started, 1e-6)
            sys.stderr.write(
                f"\rfiles {number}/{total}  indexed {report.indexed}  {report.bytes / 2**20:.1f} MB  "
                f"{rate:.1f} files/s  failures {len(report.failures)}" + ("\n" if number == total else "")
            )
            sys.stderr.flush()

    audit = AuditService(SqlAuditLog(index.engine))
    try:
        report = await reindex(InstanceService(settings, store, index, audit), progress)
        marker = store.read_marker()
        if marker is None and not store.read_only():
            marker = store.write_marker(uuid.uuid4().hex)
        if marker is not None:
            await index.record_state(STORAGE_ID, marker, replace=True)  # the index now describes this folder
    finally:
        await audit.close()
        await index.close()
    print(
        f"reindexed {report.indexed} file(s) in {time.monotonic() - started:.1f} s; "
        f"{len(report.duplicates)} duplicate(s), {len(report.failures)} not indexed"
    )
    for name, why in report.failures[:50]:
        print(f"  not indexed: {name}: {why}")
    return 1 if report.failures else 0


def _iso_moment(text: str) -> datetime:
    """``--since``/``--until``: ISO 8601 (``2026-12-01``, ``2026-12-01T08:00:00+01:00``); UTC without a zone."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from None


async def _export_audit(settings: Settings, since: datetime | None, until: datetime | None, form: str) -> int:
    """Write the audit records (oldest first) to stdout as JSON lines or CSV, the fields of ``GET /admin/audit``."""
    from app.index.audit import AuditQuery, SqlAuditLog
    from app.index.sql import SqlInstanceIndex
    from app.main import database_url
    from app.services.audit_view import FIELDS, as_dict, time_us

    if settings.database_url is None:  # the default SQLite index lives in the storage folder
        settings.storage_dir.mkdir(parents=True, exist_ok=True)
    index = await SqlInstanceIndex.open(database_url(settings))
    query = AuditQuery(since_us=time_us(since) if since else None, until_us=time_us(until) if until else None)
    out = sys.stdout
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n") if form == "csv" else None
    if writer is not None:
        writer.writeheader()
    try:
        async for record in SqlAuditLog(index.engine).export(query):
            entry = as_dict(record)
            if writer is None:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            else:
                detail = entry["detail"]
                writer.writerow({**entry, "detail": json.dumps(detail, ensure_ascii=False) if detail else ""})
    finally:
        await index.close()
    out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightbox", description="Lightbox DICOM file service")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="start the HTTP service (the default)")
    importing = sub.add_parser("import", help="upload files, folders (recursively) and ZIPs to a running service")
    importing.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    importing.add_argument("--url", default=DEFAULT_URL, help=f"the service (default {DEFAULT_URL})")
    importing.add_argument("--workers", type=int, default=4, help="uploads at once (default 4)")
    reindexing = sub.add_parser("reindex", help="rebuild the index from the storage folder (stop the service first)")
    reindexing.add_argument(
        "--prune-missing",
        action="store_true",
        help="instead, remove only the index rows whose file is missing from storage (lists them; needs --yes)",
    )
    reindexing.add_argument("--yes", action="store_true", help="with --prune-missing: really remove them")
    sub.add_parser("check", help="compare the index with the storage folder; exit status 1 when they disagree")
    sub.add_parser("migrate", help="bring the index to the newest schema and exit (for deploy pipelines)")
    sweeping = sub.add_parser("sweep", help="remove blobs without an index row now (one replica at a time)")
    sweeping.add_argument(
        "--min-age",
        type=float,
        metavar="SECONDS",
        help="only blobs older than this (default LIGHTBOX_SWEEP_MIN_AGE_SECONDS; 0 only when no upload is running)",
    )
    access_cli.add_parsers(sub)
    auditing = sub.add_parser("audit", help="the audit trail")
    audit_sub = auditing.add_subparsers(dest="audit_command", required=True)
    export = audit_sub.add_parser("export", help="write the audit records to stdout, oldest first")
    export.add_argument("--since", type=_iso_moment, help="records from this ISO 8601 time on (UTC without a zone)")
    export.add_argument("--until", type=_iso_moment, help="records before this ISO 8601 time")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="JSON lines (default) or CSV")
    args = parser.parse_args(argv)
    if args.command == "import":
        return import_paths(args.paths, args.url, max(1, args.workers))
    settings = settings_from_environment()
    if args.command == "check":
        return asyncio.run(_check(settings))
    if args.command == "migrate":
        return asyncio.run(_migrate_only(settings))
    if args.command == "sweep":
        if args.min_age is not None and args.min_age < 0:
            parser.error("--min-age must be 0 or more seconds")
        return asyncio.run(_sweep(settings, args.min_age))
    if args.command == "reindex" and args.prune_missing:
        return asyncio.run(_prune_missing(settings, args.yes))
    if args.command == "reindex":
        return asyncio.run(_reindex(settings))
    if args.command in ("users", "keys"):
        return asyncio.run(access_cli.run(args, settings))
    if args.command == "audit":
        return asyncio.run(_export_audit(settings, args.since, args.until, args.format))
    serve(settings)
    return 0
