"""Run native-code work (codec decoders) in worker processes, so that a crash costs a worker, not the server.

Some decoders abort the whole process on a corrupt stream (GDCM's JPEG codec lets a C++
exception escape into ``std::terminate``; a Rust decoder panics). Work given to the sandbox
runs in a small pool of spawned processes: a worker that dies or overruns its time budget
is answered with :class:`NotRenderable` and the pool is replaced.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from app.errors import NotRenderable
from app.tracing import span

T = TypeVar("T")
log = logging.getLogger("lightbox.sandbox")


def _import(modules: tuple[str, ...]) -> int:
    for module in modules:
        importlib.import_module(module)
    return os.getpid()


class DecodeSandbox:
    """A replaceable process pool with a per-task time budget."""

    def __init__(self, workers: int, timeout_seconds: float, on_replace: Callable[[str], None] | None = None) -> None:
        self._workers = workers
        self._timeout = timeout_seconds
        self._on_replace = on_replace  # told "crash" or "timeout" each time the pool is replaced (metrics)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _current_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")  # no inherited threads or locks
                self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor, reason: str) -> None:
        if self._on_replace is not None:
            self._on_replace(reason)
        with self._lock:
            if self._pool is broken:
                self._pool = None
        for process in list(getattr(broken, "_processes", {}).values()):  # a hung worker must not linger
            process.kill()
        broken.shutdown(wait=False, cancel_futures=True)

    async def warm(self, *modules: str) -> None:
        """Start the workers and import ``modules`` there now, with no time limit, so deadlines count work only."""
        pool = self._current_pool()
        await asyncio.gather(*(asyncio.wrap_future(pool.submit(_import, modules)) for _ in range(self._workers)))

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a worker process; crashes and overruns become :class:`NotRenderable`."""
        with span("decode_sandbox", timeout_seconds=self._timeout):
            return await self._run(function, *args)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        pool = self._current_pool()
        future = asyncio.wrap_future(pool.submit(function, *args))
        try:
            return await asyncio.wait_for(future, self._timeout)
        except BrokenProcessPool:
            log.warning("a decoder worker crashed; replacing the pool")
            self._replace(pool, "crash")
            raise NotRenderable("the pixel data crashed the decoder: the codec stream is corrupt") from None
        except TimeoutError:
            log.warning("a decoder worker ran past %.0f s; replacing the pool", self._timeout)
            self._replace(pool, "timeout")
            raise NotRenderable(f"decoding took longer than {self._timeout:.0f} s and was stopped") from None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
