"""Group commit: the index writes of one process that arrive together share one transaction.

Each upload used to take the process's write lock for its own transaction and its own commit (one
WAL fsync with SQLite's ``synchronous=FULL``), so concurrent uploads queued behind each other's
round trips and fsyncs. Here a caller queues its write and waits; one writer task takes everything
queued (up to ``max_batch``), writes it in one batch under the write lock, and resolves every
caller with its own outcome only after the batch's commit returned, so an acknowledged write is as
durable as before. What one write fails with (a duplicate, a conflict) is that caller's alone: the
batch function answers per item.

Cancellation: a caller cancelled while its write is still queued takes it out (nothing written). A
caller cancelled once its write is in the batch being committed waits for that batch and returns
its outcome: the row is (or is not) committed whatever the caller does, and a caller that undid its
side of a committed row (its stored file) would leave the index naming a file that is gone. A
cancellation from an anyio cancel scope is delivered again at the caller's next checkpoint.

Tracing: the writer task starts in the context of the caller that found no writer running, so a
batch's SQL spans sit under that caller's ``index.commit`` span (the other callers' spans have none).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit(Generic[T, R]):
    """Writes queued by concurrent callers, written in batches by one task at a time."""

    def __init__(
        self,
        write_batch: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]],
        lock: asyncio.Lock,
        max_batch: int = 64,
    ) -> None:
        self._write_batch = write_batch
        self._lock = lock  # the index's write lock: deletions never interleave with a batch
        self._max_batch = max_batch
        self._queue: list[_Pending[T, R]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # batches committed or failed (tests and benchmarks read them)
        self.items = 0

    async def submit(self, item: T) -> R:
        """Queue ``item``, and return its outcome once the batch holding it is committed."""
        pending: _Pending[T, R] = _Pending(item)
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            # a task of its own: the batch must not die with the request that happened to start it
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        try:
            await asyncio.wait((pending.future,))
        except asyncio.CancelledError:
            if pending in self._queue:  # not taken by a batch yet: nothing was written
                self._queue.remove(pending)
                raise
            while not pending.future.done():  # in the batch being committed: its outcome is the truth
                try:
                    await asyncio.wait((pending.future,))
                except asyncio.CancelledError:
                    continue
        return pending.future.result()

    async def _drain(self) -> None:
        while self._queue:
            async with self._lock:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                if not batch:
                    continue
                try:
                    outcomes: Sequence[R | BaseException] = await self._write_batch([p.item for p in batch])
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} writes answered {len(outcomes)} outcomes")
                except Exception as exc:  # every caller of the batch learns why
                    outcomes = [exc] * len(batch)
                except BaseException:  # the writer itself is cancelled (the loop stops): so are its callers
                    for pending in batch:
                        pending.future.cancel()
                    raise
                finally:
                    self.batches += 1
                    self.items += len(batch)
                _resolve(batch, outcomes)


def _resolve(batch: Sequence[_Pending[T, R]], outcomes: Sequence[R | BaseException]) -> None:
    for pending, outcome in zip(batch, outcomes, strict=True):
        if pending.future.done():
            continue
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)
