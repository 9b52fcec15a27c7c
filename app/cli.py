"""The ``lightbox`` command: start the service (``lightbox`` or ``lightbox serve``).

It is the production entry point: it validates every setting before anything starts (exit code 2
and one line naming the variable), configures JSON logs for uvicorn and the app, runs
``LIGHTBOX_WORKERS`` worker processes, gives in-flight requests ``LIGHTBOX_SHUTDOWN_TIMEOUT``
seconds after SIGTERM, and manages prometheus-client's multiprocess folder so ``/metrics`` sums
every worker.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from app.config import Settings
from app.logging import log_config
from app.metrics import MULTIPROC_ENV

log = logging.getLogger("lightbox")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightbox", description="Lightbox DICOM file service")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="start the HTTP service (the default)")
    args = parser.parse_args(argv)
    settings = _settings_or_exit()
    if args.command in (None, "serve"):
        serve(settings)
    return 0
