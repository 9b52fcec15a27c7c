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
WORKERS = 2
RENDER_THREADS = 2


def test_soak_has_no_errors_and_flat_memory(tmp_path: Path) -> None:
    # a small render cache: the memory check measures leaks, not a bounded cache filling up
    env = {
        "LIGHTBOX_WORKERS": str(WORKERS),
        "LIGHTBOX_RENDER_THREADS": str(RENDER_THREADS),
        "LIGHTBOX_LOG_LEVEL": "warning",
        "LIGHTBOX_RENDER_CACHE_BYTES": str(16 << 20),
    }
    with run_server(tmp_path, env=env) as server:
        warm = asyncio.run(soak(server.url, 5.0, 32, server.process.pid))  # caches and pools fill up
        result = asyncio.run(soak(server.url, SECONDS, 32, server.process.pid))
    print(json.dumps({"warm-up": warm, "soak": result}, indent=1))
    # on a failure, what the server itself said (worker restarts, refusals) is in the report
    print("\n".join(line for line in server.log_lines() if '"level":"info"' not in line)[-20_000:])
    kinds = result["kinds"]
    assert isinstance(kinds, dict)
    assert {"upload", "tag", "render", "list"} <= set(kinds)
    for kind, figures in kinds.items():
        assert figures["requests"] > 0, kind
        assert figures["errors"] == 0, (kind, figures["first_errors"])
    # the master, multiprocessing's resource tracker, and per worker itself and its decode sandbox's processes
    most_processes = 2 + WORKERS * (1 + RENDER_THREADS)
    processes = result["processes_end"]
    assert isinstance(processes, int)
    assert processes <= most_processes, "the server started processes it does not account for"
    grown = result["rss_mib_grown_by_survivors"]
    assert isinstance(grown, float)
    assert grown < 150, f"the processes that lived through the soak grew by {grown} MiB"
