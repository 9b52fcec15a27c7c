"""Blocking calls in worker threads on the upload's hot path, for a third of anyio's cost per call.

``anyio.to_thread.run_sync`` spends ~55 us of event-loop CPU per call (a capacity limiter, cancel
scopes, its own worker queue), the event loop's executor ~20 us. A small upload makes three to five
such calls (stage, write and validate, publish, the index batch), ~5 % of its CPU. Elsewhere, where a
call is rare or long, anyio's stays.

What is kept from anyio's default (``abandon_on_cancel=False``): the call always runs to its end,
and a cancellation of the caller (a timeout, a client gone) takes effect once it has returned, so
no code after the ``await`` ever runs alongside the thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: Threads of the event loop's executor in a server process: anyio's default limit, which the
#: other worker-thread calls share; enough for that many uploads waiting on fsync at once.
WORKER_THREADS = 40


def worker_threads() -> ThreadPoolExecutor:
    """The executor a server process installs as its event loop's default (see :func:`run_blocking`)."""
    return ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="lightbox-worker")


async def run_blocking(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` in a thread of the running loop's default executor."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, functools.partial(func, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await _until_done(future)
        raise


async def _until_done(future: asyncio.Future[T]) -> None:
    """Wait for ``future`` however often the waiting task is cancelled meanwhile (each is re-raised after)."""
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            continue
    if not future.cancelled():
        future.exception()  # retrieved: the caller's cancellation wins over the call's failure
