"""The ``lightbox`` command: start the service (``lightbox`` or ``lightbox serve``), ``import`` files into
a running service, ``reindex`` the storage folder, ``audit export`` the audit trail.

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
import logging.config
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from app.config import Settings
from app.logging import log_config
from app.metrics import MULTIPROC_ENV

log = logging.getLogger("lightbox")
DEFAULT_URL = "http://127.0.0.1:8080"


def _settings_or_exit() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problem = exc.errors()[0]
        variable = "LIGHTBOX_" + str(problem["loc"][0]).upper() if problem.get("loc") else "LIGHTBOX_*"
        print(f"lightbox: invalid {variable}: {problem['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


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
    from app.index.sql import SqlInstanceIndex
    from app.main import database_url

    settings.storage_dir.mkdir(parents=True, exist_ok=True)
    index = await SqlInstanceIndex.open(database_url(settings))
    await index.close()


def serve(settings: Settings) -> None:
    """Run ``settings.workers`` uvicorn workers; each builds the app from the same ``LIGHTBOX_*`` environment."""
    config = log_config(settings)
    logging.config.dictConfig(config)
    log.info(
        "starting %d worker(s) on %s:%d (graceful shutdown %d s)",
        settings.workers,
        settings.host,
        settings.port,
        settings.shutdown_timeout,
    )
    asyncio.run(_migrate(settings))  # once, before the workers start; theirs are then no-ops
    with multiprocess_metrics(settings.workers):
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=config,
            log_level=settings.log_level,
            timeout_graceful_shutdown=settings.shutdown_timeout,
        )


def import_paths(paths: list[Path], url: str, workers: int) -> int:
    """Upload files, folders and ZIPs; exit status 1 if any file failed."""
    from app.importer import Importer

    importer = Importer(url, workers=workers)
    try:
        stats = importer.run(paths)
    except FileNotFoundError as exc:
        print(f"lightbox import: {exc}", file=sys.stderr)
        return 2
    print(importer.summary())
    return 1 if stats.failures else 0


async def _reindex(settings: Settings) -> int:
    from app.index.audit import SqlAuditLog
    from app.index.sql import SqlInstanceIndex
    from app.main import database_url
    from app.services.audit import AuditService
    from app.services.instances import InstanceService
    from app.services.reindex import ReindexReport, reindex
    from app.storage.local import LocalBlobStore

    store = LocalBlobStore(settings.storage_dir)
    store.prepare()
    index = await SqlInstanceIndex.open(database_url(settings))
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
    sub.add_parser("reindex", help="rebuild the index from the storage folder (stop the service first)")
    auditing = sub.add_parser("audit", help="the audit trail")
    audit_sub = auditing.add_subparsers(dest="audit_command", required=True)
    export = audit_sub.add_parser("export", help="write the audit records to stdout, oldest first")
    export.add_argument("--since", type=_iso_moment, help="records from this ISO 8601 time on (UTC without a zone)")
    export.add_argument("--until", type=_iso_moment, help="records before this ISO 8601 time")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="JSON lines (default) or CSV")
    args = parser.parse_args(argv)
    if args.command == "import":
        return import_paths(args.paths, args.url, max(1, args.workers))
    settings = _settings_or_exit()
    if args.command == "reindex":
        return asyncio.run(_reindex(settings))
    if args.command == "audit":
        return asyncio.run(_export_audit(settings, args.since, args.until, args.format))
    serve(settings)
    return 0
