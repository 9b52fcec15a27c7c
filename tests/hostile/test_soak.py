"""A bounded soak on loopback: mixed uploads, tag lookups, renders and lists at concurrency 32 against a
real two-worker server. Zero errors, and memory that does not keep growing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from benchmarks.soak import soak
from tests.e2e.server import run_server

pytestmark = pytest.mark.slow
SECONDS = 20.0


def test_soak_has_no_errors_and_flat_memory(tmp_path: Path) -> None:
    # a small render cache: the memory check measures leaks, not a bounded cache filling up
    env = {"LIGHTBOX_WORKERS": "2", "LIGHTBOX_LOG_LEVEL": "warning", "LIGHTBOX_RENDER_CACHE_BYTES": str(16 << 20)}
    with run_server(tmp_path, env=env) as server:
        warm = asyncio.run(soak(server.url, 10.0, 32, server.process.pid))  # caches and pools fill up
        result = asyncio.run(soak(server.url, SECONDS, 32, server.process.pid))
    print(json.dumps({"warm-up": warm, "soak": result}, indent=1))
    kinds = result["kinds"]
    assert isinstance(kinds, dict)
    assert {"upload", "tag", "render", "list"} <= set(kinds)
    for kind, figures in kinds.items():
        assert figures["requests"] > 0, kind
        assert figures["errors"] == 0, (kind, figures["first_errors"])
    start, end = result["rss_mib_start"], result["rss_mib_end"]
    assert isinstance(start, float) and isinstance(end, float)
    assert end - start < 150, f"memory grew from {start} to {end} MiB during the soak"
