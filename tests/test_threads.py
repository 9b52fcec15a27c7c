"""``run_blocking``: a worker-thread call that is never abandoned, as anyio's default is."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
import pytest

from app.threads import WORKER_THREADS, run_blocking, worker_threads

pytestmark = pytest.mark.anyio


def _add(a: int, b: int, *, times: int = 1) -> tuple[int, str]:
    return (a + b) * times, threading.current_thread().name


async def test_the_call_runs_in_a_worker_thread_with_its_arguments() -> None:
    asyncio.get_running_loop().set_default_executor(worker_threads())
    value, thread = await run_blocking(_add, 2, 3, times=2)
    assert value == 10
    assert thread.startswith("lightbox-worker") and thread != threading.current_thread().name
    assert worker_threads()._max_workers == WORKER_THREADS


async def test_a_failure_of_the_call_is_raised_to_the_caller() -> None:
    def fail() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await run_blocking(fail)


async def test_a_cancelled_caller_waits_for_the_call_to_end() -> None:
    """A timeout that expires mid-call (a client gone, a slow disk) must not let the caller's clean-up
    (removing a staged file) run while the thread still writes it."""
    started, finished = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        time.sleep(0.3)
        finished.set()
        return "done"

    begun = time.monotonic()
    with anyio.move_on_after(0.05) as scope:
        await run_blocking(slow)
    assert scope.cancelled_caught
    assert started.is_set() and finished.is_set()  # the cancellation took effect only after the call ended
    assert time.monotonic() - begun >= 0.3


async def test_repeated_cancellations_while_waiting_still_wait() -> None:
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.3)
        finished.set()

    task = asyncio.ensure_future(run_blocking(slow))
    for _ in range(3):
        await asyncio.sleep(0.02)
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
