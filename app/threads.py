"""Blocking calls in worker threads on the upload's hot path, for about half of anyio's cost per call.

``anyio.to_thread.run_sync`` spends ~55-65 us of event-loop CPU per call (a capacity limiter, cancel
scopes, its own worker queue), this ~36 us (the loop's executor, one shielded scope). A small upload
makes three to five such calls (stage, write and validate, publish, the index batch). Elsewhere, where a
call is rare or long, anyio's stays.

Cancellation as anyio's default (``abandon_on_cancel=False``), and a little safer: the call always runs
to its end in the caller's context variables (request id, trace span), and its result is never lost
(it may own a staged file): an anyio cancellation is held off by a shielded scope and delivered at the
next checkpoint, as anyio's own call does; a plain asyncio cancellation (grpc.aio cancels a handler so)
waits for the call, returns its result, and is requested again for the caller's next ``await``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import anyio

P = ParamSpec("P")
T = TypeVar("T")

#: Threads of the event loop's executor in a server process, as many as anyio's default limit (its
#: calls keep their own threads): enough for that many uploads waiting on fsync at once.
WORKER_THREADS = 40


def worker_threads() -> ThreadPoolExecutor:
    """The executor a server process installs as its event loop's default (see :func:`run_blocking`)."""
    return ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="lightbox-worker")


async def run_blocking(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` in a thread of the running loop's default executor."""
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    future = asyncio.get_running_loop().run_in_executor(None, call)
    with anyio.CancelScope(shield=True):
        outcome = await _outcome(future)
    return outcome


async def _outcome(future: asyncio.Future[T]) -> T:
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError as cancelled:
        while not future.done():  # however often the task is cancelled meanwhile
            try:
                await asyncio.wait([future])
            except asyncio.CancelledError:
                continue
        if future.cancelled():  # the executor shut down before the call ran: nothing to hand back
            raise
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()  # the request taken here, made again: delivered at the caller's next await
        task.cancel(*cancelled.args)
        return future.result()
