"""The audit trail's store: ``audit_records`` rows, appended in batches and read back by filters.

Append-only by construction: this module has no update or delete, and migration 0006_audit makes
the database refuse them. Rows carry plain strings; :mod:`app.services.audit` owns their meaning.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import IndexUnavailable
from app.index.schema import audit_records
from app.index.sql import refuse_unstorable_text

T = TypeVar("T")
EXPORT_BATCH = 1000
#: 11 columns x 500 rows = 5,500 parameters, well below SQLite's 32,766 (SQLITE_MAX_VARIABLE_NUMBER)
SQLITE_ROWS_PER_INSERT = 500


class AuditRecord(NamedTuple):
    """One audited event, as stored (``time_us``: microseconds since the Unix epoch, UTC).

    A named tuple, immutable as a frozen dataclass but built ~3x faster (one is built per lookup)."""

    time_us: int
    actor: str
    actor_type: str
    action: str
    outcome: str
    reason: str | None = None
    study_instance_uid: str | None = None
    name: str | None = None
    client: str | None = None
    request_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class AuditQuery:
    """Filters of ``GET /admin/audit``: a time range (``since`` inclusive, ``until`` exclusive) and exact matches."""

    since_us: int | None = None
    until_us: int | None = None
    actor: str | None = None
    study_instance_uid: str | None = None
    action: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord] = field(default_factory=list)
    total: int = 0


class AuditLog(Protocol):
    """Append and read; nothing else (no update, no delete)."""

    async def append(self, records: Sequence[AuditRecord]) -> None:
        """Store ``records`` in one transaction: all or none."""
        ...

    async def search(self, query: AuditQuery) -> AuditPage:
        """One page, newest first, and the total count of matches."""
        ...

    def export(self, query: AuditQuery) -> AsyncIterator[AuditRecord]:
        """Every match, oldest first (``limit``/``offset`` ignored), read in batches."""
        ...


COLUMNS = [audit_records.c[name] for name in AuditRecord._fields]
AUDIT_COLUMNS = AuditRecord._fields


@functools.lru_cache(maxsize=8)
def _sqlite_insert(rows: int) -> str:
    """``INSERT INTO audit_records (...) VALUES (?, ...), (?, ...)`` for ``rows`` rows (qmark: sqlite3's style)."""
    row = "(" + ", ".join("?" * len(AUDIT_COLUMNS)) + ")"
    return f"INSERT INTO audit_records ({', '.join(AUDIT_COLUMNS)}) VALUES " + ", ".join([row] * rows)


def _conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    table = audit_records.c
    conditions: list[ColumnElement[bool]] = []
    if query.since_us is not None:
        conditions.append(table.time_us >= query.since_us)
    if query.until_us is not None:
        conditions.append(table.time_us < query.until_us)
    if query.actor is not None:
        conditions.append(table.actor == query.actor)
    if query.study_instance_uid is not None:
        conditions.append(table.study_instance_uid == query.study_instance_uid)
    if query.action is not None:
        conditions.append(table.action == query.action)
    return conditions


def _record(row: Any) -> AuditRecord:
    return AuditRecord(**row._mapping)


class SqlAuditLog:
    """:class:`AuditLog` on the index's SQLAlchemy engine (same database, its own table)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @staticmethod
    async def _guard(action: Callable[[], Awaitable[T]]) -> T:
        try:
            return await action()
        except (SQLAlchemyError, OSError, UnicodeEncodeError) as exc:  # OSError: the connection refused or dropped
            refuse_unstorable_text(exc)  # text no record can hold (InvalidRequest): a search's, or a record's
            cause = getattr(exc, "orig", None) or exc
            raise IndexUnavailable(f"the audit trail failed: {type(cause).__name__}"[:300]) from exc

    async def append(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        if self.engine.dialect.name == "sqlite":
            await self._guard(lambda: self._append_sqlite(records))
            return
        rows = [record._asdict() for record in records]

        async def write() -> None:
            async with self.engine.begin() as conn:
                await conn.execute(insert(audit_records), rows)

        await self._guard(write)

    async def _append_sqlite(self, records: Sequence[AuditRecord]) -> None:
        """SQLite: many rows per INSERT statement. An executemany steps the statement once per row, and the
        driver's thread gives up the GIL and waits to get it back around every step: behind an event loop
        busy with a few thousand lookups a second, that made a flush of 500 records take seconds, the queue
        filled, and lookups were refused (503). One statement per ``SQLITE_ROWS_PER_INSERT`` rows steps
        once. (asyncpg's executemany is pipelined on the event loop: PostgreSQL keeps it.)"""
        async with self.engine.begin() as conn:
            for start in range(0, len(records), SQLITE_ROWS_PER_INSERT):
                chunk = records[start : start + SQLITE_ROWS_PER_INSERT]
                values = tuple(value for record in chunk for value in record)  # in AUDIT_COLUMNS order
                await conn.exec_driver_sql(_sqlite_insert(len(chunk)), values)

    async def search(self, query: AuditQuery) -> AuditPage:
        conditions = _conditions(query)
        page = (
            select(*COLUMNS)
            .where(*conditions)
            .order_by(audit_records.c.time_us.desc(), audit_records.c.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        count = select(func.count()).select_from(audit_records).where(*conditions)

        async def read() -> AuditPage:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(page)).all()
                total = await conn.scalar(count)
            return AuditPage([_record(row) for row in rows], int(total or 0))

        return await self._guard(read)

    async def export(self, query: AuditQuery) -> AsyncIterator[AuditRecord]:
        """Keyset pages by id (insertion order), so a long export never re-reads or skips a row."""
        conditions = _conditions(query)
        last_id = 0
        while True:
            batch = (
                select(audit_records.c.id, *COLUMNS)
                .where(audit_records.c.id > last_id, *conditions)
                .order_by(audit_records.c.id)
                .limit(EXPORT_BATCH)
            )

            async def read(statement: Any = batch) -> list[Any]:
                async with self.engine.connect() as conn:
                    return list((await conn.execute(statement)).all())

            rows = await self._guard(read)
            for row in rows:
                yield AuditRecord(**{key: value for key, value in row._mapping.items() if key != "id"})
            if len(rows) < EXPORT_BATCH:
                return
            last_id = int(rows[-1].id)
