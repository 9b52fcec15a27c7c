"""Claims on fleet-wide jobs (the blob sweeper), held through the index database, never by one node.

Any replica may run such a job; the database decides which one does, so two never run it at once and a
replica that dies mid-job gives the claim back by itself:

* PostgreSQL: a session-level ``pg_try_advisory_lock`` on a connection held for the job (PostgreSQL
  docs, "Advisory Locks"); a killed holder's connection closes and the server releases the lock.
* SQLite (one host): a lease row in ``index_state`` taken by compare-and-set (``UPDATE ... WHERE value =
  <the value read>``, atomic in SQLite's single writer); a holder that dies leaves a lease that expires.

The time the job last finished is kept in ``index_state`` too, so N replicas waking every interval run
it about once per interval between them, not N times.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import text

from app.index.schema import index_state
from app.index.sql import guarded

log = logging.getLogger("lightbox.claims")
#: How long an SQLite lease lasts when its holder dies without giving it back (seconds).
LEASE_SECONDS = 3600.0


def _now_us() -> int:
    return time.time_ns() // 1000


async def _read(conn: AsyncConnection, key: str) -> str | None:
    value = await conn.scalar(select(index_state.c.value).where(index_state.c.key == key))
    return None if value is None else str(value)


async def _write(conn: AsyncConnection, key: str, value: str) -> None:
    """Set ``key`` (the claim is held: nobody else writes it now)."""
    changed = await conn.execute(update(index_state).where(index_state.c.key == key).values(value=value))
    if changed.rowcount == 0:
        await conn.execute(insert(index_state).values(key=key, value=value))


class JobClaim:
    """The claim on one named job; ``lock_key`` is its PostgreSQL advisory lock number (any constant)."""

    def __init__(self, engine: AsyncEngine, job: str, lock_key: int) -> None:
        self.engine = engine
        self.job = job
        self.lock_key = lock_key
        self._finished_key = f"{job}_finished_us"
        self._lease_key = f"{job}_lease_until_us"

    async def last_finished_us(self) -> int | None:
        async def run() -> int | None:
            async with self.engine.connect() as conn:
                value = await _read(conn, self._finished_key)
            return int(value) if value and value.isdigit() else None

        return await guarded(run)

    @contextlib.asynccontextmanager
    async def hold(self, due_after_seconds: float | None = None) -> AsyncIterator[bool]:
        """Yield True while this process holds the job's claim and the job is due, else False.

        ``due_after_seconds``: the job is due only when it last finished longer ago than this (None:
        due now, an operator's ``lightbox sweep``). On leaving with True, the finish time is recorded.
        """
        if self.engine.dialect.name == "postgresql":
            async with self._advisory_lock() as held:
                due = held and await self._due(due_after_seconds)
                yield due
                if due:
                    await self._finished()
            return
        held = await guarded(self._take_lease)
        if not held:
            yield False
            return
        try:
            due = await self._due(due_after_seconds)
            yield due
            if due:
                await self._finished()
        finally:
            with contextlib.suppress(Exception):
                await guarded(self._give_back_lease)

    async def _due(self, due_after_seconds: float | None) -> bool:
        if due_after_seconds is None:
            return True
        last = await self.last_finished_us()
        return last is None or _now_us() - last >= due_after_seconds * 1_000_000

    async def _finished(self) -> None:
        async def run() -> None:
            async with self.engine.begin() as conn:
                await _write(conn, self._finished_key, str(_now_us()))

        await guarded(run)

    @contextlib.asynccontextmanager
    async def _advisory_lock(self) -> AsyncIterator[bool]:
        """A session-level advisory lock on a connection kept for the job; invalidated rather than pooled
        if the unlock fails, so no pooled connection goes on holding it."""
        conn = await guarded(self.engine.connect)
        try:
            held = bool(
                await guarded(lambda: conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.lock_key}))
            )
            await conn.commit()
            try:
                yield held
            finally:
                if held:
                    try:
                        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.lock_key})
                        await conn.commit()
                    except SQLAlchemyError:
                        await conn.invalidate()
        finally:
            await conn.close()

    async def _take_lease(self) -> bool:
        now = _now_us()
        async with self.engine.begin() as conn:
            current = await _read(conn, self._lease_key)
            if current is not None and current.isdigit() and int(current) > now:
                return False  # held by a live process (or one that died less than LEASE_SECONDS ago)
            until = str(now + int(LEASE_SECONDS * 1_000_000))
            if current is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(insert(index_state).values(key=self._lease_key, value=until))
                except IntegrityError:
                    return False  # taken first by another process
                return True
            swapped = await conn.execute(
                update(index_state)
                .where(index_state.c.key == self._lease_key, index_state.c.value == current)
                .values(value=until)
            )
            return swapped.rowcount == 1

    async def _give_back_lease(self) -> None:
        async with self.engine.begin() as conn:
            await _write(conn, self._lease_key, "0")
