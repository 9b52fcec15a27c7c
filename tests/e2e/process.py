"""``lightbox(tmp_path, log_format="json", ...)``: the real command with ``LIGHTBOX_<KEY>`` settings."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from tests.e2e.server import LIGHTBOX, run_server
from tests.e2e.server import RunningServer as Server

__all__ = ["LIGHTBOX", "Server", "lightbox"]


def lightbox(tmp_path: Path, **settings: str) -> AbstractContextManager[Server]:
    """``lightbox`` with ``LIGHTBOX_<KEY>=value`` for each keyword; its output goes to a file."""
    return run_server(tmp_path, env={f"LIGHTBOX_{key.upper()}": value for key, value in settings.items()})
