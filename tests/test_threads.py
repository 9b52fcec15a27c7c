"""``run_blocking``: a worker-thread call that is never abandoned and whose result is never lost."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import anyio
import pytest

from app.threads import WORKER_THREADS, run_blocking, worker_threads

pytestmark = pytest.mark.anyio

REQUEST = contextvars.ContextVar("request", default="none")


def _add(a: int, b: int, *, times: int = 1) -> tuple[int, str, str]:
    return (a + b) * times, threading.current_thread().name, REQUEST.get()


async def test_the_call_runs_in_a_worker_thread_with_its_arguments_and_context() -> None:
    asyncio.get_running_loop().set_default_executor(worker_threads())
    REQUEST.set("r-1")  # as the request id and the trace span are: log lines and spans of the call carry them
    value, thread, request = await run_blocking(_add, 2, 3, times=2)
    assert (value, request) == (10, "r-1")
    assert thread.startswith("lightbox-worker") and thread != threading.current_thread().name
    assert worker_threads()._max_workers == WORKER_THREADS


async def test_a_failure_of_the_call_is_raised_to_the_caller() -> None:
    def fail() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await run_blocking(fail)


def _slow(finished: threading.Event) -> str:
    time.sleep(0.3)
    finished.set()
    return "resource"


async def test_an_anyio_cancellation_waits_for_the_call_and_comes_at_the_next_checkpoint() -> None:
    """A timeout that expires mid-call (a client gone, a slow disk): the caller gets the call's result
    (a staged file it must remove) and is cancelled at its next checkpoint, never while the thread runs."""
    finished = threading.Event()
    got = []
    begun = time.monotonic()
    with anyio.move_on_after(0.05) as scope:
        got.append(await run_blocking(_slow, finished))
        await anyio.sleep(10)
    assert scope.cancelled_caught and finished.is_set()
    assert got == ["resource"]
    assert 0.3 <= time.monotonic() - begun < 5


async def test_a_plain_asyncio_cancellation_keeps_the_result_and_is_delivered_after() -> None:
    """grpc.aio cancels a handler's task directly: the result still reaches the caller, whose clean-up
    then runs, and the task ends cancelled, however often it was cancelled meanwhile."""
    finished = threading.Event()
    released: list[str] = []

    async def handler() -> None:
        resource = await run_blocking(_slow, finished)
        try:
            await asyncio.sleep(10)
        finally:
            released.append(resource)

    task = asyncio.ensure_future(handler())
    for _ in range(3):
        await asyncio.sleep(0.02)
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set() and released == ["resource"]
