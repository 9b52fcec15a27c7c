"""The ``lightbox`` command: start the service (``lightbox`` or ``lightbox serve``)."""

from __future__ import annotations

import argparse
import sys

import uvicorn
from pydantic import ValidationError

from app.config import Settings


def _settings_or_exit() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problem = exc.errors()[0]
        variable = "LIGHTBOX_" + str(problem["loc"][0]).upper() if problem.get("loc") else "LIGHTBOX_*"
        print(f"lightbox: invalid {variable}: {problem['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(settings: Settings) -> None:
    """Run the service with uvicorn on the configured host and port."""
    from app.main import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightbox", description="Lightbox DICOM file service")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="start the HTTP service (the default)")
    args = parser.parse_args(argv)
    settings = _settings_or_exit()
    if args.command in (None, "serve"):
        serve(settings)
    return 0
