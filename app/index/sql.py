"""The index on SQLAlchemy 2 (asyncio): SQLite embedded by default, PostgreSQL by configuration.

Each instance is written in its own savepoint (patient, study and series rows are found or
created, then the instance row); the instances a process adds at the same moment share one
transaction and one commit (group commit, :mod:`app.index.group_commit`). Duplicates are decided
by the unique constraints, never by a check-then-insert: when a concurrent upload wins the race,
the loser's IntegrityError is classified afterwards (identical bytes, or the same SOP Instance UID).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from anyio import to_thread
from sqlalchemy import ColumnElement, Select, and_, create_engine, delete, event, false, func, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.auth import policy
from app.auth.principals import Principal
from app.dicom.header_json import Header
from app.dicom.qido import SearchQuery
from app.dicom.qido_result import needed_up_to, parse_header
from app.errors import FileNotFound, Forbidden, IndexNeedsWrite, IndexUnavailable, InvalidRequest
from app.index.base import (
    AddResult,
    FindMatch,
    FindQuery,
    InstanceSummary,
    ListPage,
    ListQuery,
    Located,
    NewInstance,
    SearchRow,
    StudyAccess,
)
from app.index.batch import Add, existing_in, insert_batch, refresh_modalities
from app.index.find import find_statement
from app.index.group_commit import GroupCommit
from app.index.migrate import pending, upgrade
from app.index.retry import WRITE_ATTEMPTS, transient
from app.index.schema import index_state, instances, patients, series, studies
from app.index.search import like_pattern, locate_statement, search_statement
from app.index.urls import async_url, read_only_sqlite
from app.storage.names import is_stored_name
from app.threads import run_blocking

T = TypeVar("T")
SQLITE_BUSY_MS = 30_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL (readers never wait for the writer), fsync on every commit, FKs on, wait for other processes."""
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", f"busy_timeout={SQLITE_BUSY_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_read_only_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """A read-only SQLite file: nothing that writes (no WAL switch, no ANALYZE), foreign keys as usual."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _matches(column: Any, value: str, case_insensitive: bool = False) -> ColumnElement[bool]:
    if "*" in value or "?" in value:
        target = func.lower(column) if case_insensitive else column
        pattern = like_pattern(value.lower() if case_insensitive else value)
        like: ColumnElement[bool] = target.like(pattern, escape="\\")
        return like
    equal: ColumnElement[bool] = func.lower(column) == value.lower() if case_insensitive else column == value
    return equal


#: PostgreSQL SQLSTATEs of a text value it cannot hold (Appendix A): character_not_in_repertoire (a NUL,
#: which its text type refuses while SQLite stores it), untranslatable_character.
UNSTORABLE_TEXT_SQLSTATES = {"22021", "22P05"}


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable_text(text: str) -> bool:
    """Whether no index database can hold ``text``: a NUL (PostgreSQL's text refuses it) or a lone surrogate
    (no driver can encode it as UTF-8; JSON's ``"\\ud800"`` makes one)."""
    return "\x00" in text or (not text.isascii() and _LONE_SURROGATE.search(text) is not None)


def refuse_unstorable_text(exc: BaseException) -> None:
    """InvalidRequest if ``exc`` is the database or its driver refusing a text value (its message, which quotes
    it, dropped): PostgreSQL's SQLSTATE for NUL, or the driver failing to encode a lone surrogate."""
    cause = getattr(exc, "orig", None)
    if (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) in UNSTORABLE_TEXT_SQLSTATES:
        raise InvalidRequest("a text value holds a character the index cannot store (NUL)") from None
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # asyncpg's encode error arrives wrapped, aiosqlite's bare
        if isinstance(exc, UnicodeEncodeError):
            raise InvalidRequest("a text value holds a character the index cannot store (a lone surrogate)") from None
        seen.add(id(exc))
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__  # type: ignore[assignment]


async def guarded(action: Callable[[], Awaitable[T]]) -> T:
    """Run a database action; any failure but a constraint violation becomes IndexUnavailable (503).

    Text PostgreSQL cannot hold is the caller's (InvalidRequest, 400): inputs refuse or replace NUL
    before they get here (stored names, audit records, queries), this is the net under them.
    """
    try:
        return await action()
    except IntegrityError:
        raise
    except (SQLAlchemyError, OSError, UnicodeEncodeError) as exc:  # OSError: the server refused or dropped it
        refuse_unstorable_text(exc)
        cause = getattr(exc, "orig", None) or exc
        raise IndexUnavailable(f"the index database failed ({type(cause).__name__})") from exc


def _name_is(name: str) -> ColumnElement[bool]:
    """``instances.name = name``; false without asking for a name of another shape than the server makes
    (a NUL, a path: no stored file can match, and PostgreSQL refuses NUL in text)."""
    matches: ColumnElement[bool] = instances.c.name == name if is_stored_name(name) else false()
    return matches


def _by_name(principal: Principal, name: str) -> list[ColumnElement[bool]]:
    """Every lookup by name: the name, and what the principal may see (auth/policy), in one WHERE."""
    seen = policy.visible(principal)
    return [_name_is(name)] if seen is None else [_name_is(name), seen]


def _dump_header(header: Header) -> str:
    """The header as compact JSON text: orjson (a small CT header in 12 us, the json module took 144);
    the json module for what orjson refuses (integers past 64 bits, lone surrogates)."""
    try:
        return orjson.dumps(header).decode()
    except orjson.JSONEncodeError:
        return json.dumps(header, separators=(",", ":"))


def _sqlite_writer(url: URL) -> Engine | None:
    """A synchronous engine on the same SQLite file, with the same pragmas (None for other databases and
    for in-memory SQLite, where a second engine would open another database)."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or "mode=memory" in str(url):
        return None
    writer = create_engine(url.set(drivername="sqlite"), connect_args={"check_same_thread": False})
    event.listen(writer, "connect", _sqlite_pragmas)
    return writer


class SqlInstanceIndex:
    """:class:`app.index.base.InstanceIndex` on any SQLAlchemy asyncio engine."""

    def __init__(self, engine: AsyncEngine, read_only: bool = False, sqlite_writer: Engine | None = None) -> None:
        self.engine = engine
        # an SQLite file's batches run on a plain sqlite3 connection, in one worker-thread call each
        self._sqlite_writer = sqlite_writer
        self.read_only = read_only  # an SQLite file in a read-only folder: reads only
        self.shared = engine.dialect.name != "sqlite"  # replicas on other hosts change it behind our back
        self._write_lock = asyncio.Lock()  # one writer per process: SQLite has one anyway
        # concurrent adds share one transaction and one commit (one WAL fsync with SQLite)
        self._group: GroupCommit[NewInstance, AddResult] = GroupCommit(self._write_batch, self._write_lock)

    @classmethod
    async def open(cls, url: str) -> SqlInstanceIndex:
        """Connect, migrate to the newest schema, and return the index.

        An SQLite file in a read-only folder (a read-only mount of an archive) is opened read-only
        and must already be at the newest schema: :class:`IndexNeedsWrite` otherwise.
        """
        target = async_url(url)
        read_only = read_only_sqlite(target)
        engine = create_async_engine(read_only or target)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_read_only_pragmas if read_only else _sqlite_pragmas)
        writer = _sqlite_writer(target) if read_only is None else None
        index = cls(engine, read_only=read_only is not None, sqlite_writer=writer)
        try:
            if read_only is not None:
                current, head = await index._guard(lambda: pending(engine))
                if current != head:
                    raise IndexNeedsWrite(
                        f"the index needs a schema migration ({current or 'empty'} -> {head}) but its folder is "
                        "read-only: start once with the storage writable"
                    )
                return index
            await index._guard(lambda: upgrade(engine))
            if engine.dialect.name == "sqlite":
                await index._guard(index._optimize_sqlite)
        except BaseException:
            await index._dispose()
            raise
        return index

    def traced_engines(self) -> list[Engine]:
        """Every engine that runs SQL (tracing instruments each): the asyncio one and the SQLite writer."""
        return [self.engine.sync_engine, *([self._sqlite_writer] if self._sqlite_writer is not None else [])]

    async def _dispose(self) -> None:
        if self._sqlite_writer is not None:
            await to_thread.run_sync(self._sqlite_writer.dispose)
        await self.engine.dispose()

    async def _optimize_sqlite(self) -> None:
        """Refresh the planner's statistics (SQLite's advice for long-lived connections); without them a
        filtered list walks every instance instead of starting from the few matching patients."""
        async with self.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")

    async def close(self) -> None:
        """Checkpoint SQLite's WAL into the database file first, so that a clean stop leaves a file that
        opens read-only on its own (a read-only mount of the storage afterwards needs no ``-wal``)."""
        if self.engine.dialect.name == "sqlite" and not self.read_only:
            try:
                async with self.engine.connect() as conn:
                    await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            except SQLAlchemyError:
                pass  # another process is writing: the last one to close checkpoints
        await self._dispose()

    async def _guard(self, action: Callable[[], Awaitable[T]]) -> T:
        return await guarded(action)

    # -- writes ---------------------------------------------------------------------------------
    async def add(self, instance: NewInstance) -> AddResult:
        """Index one instance; the uploads of this process arriving together share one transaction
        (:mod:`app.index.group_commit`), each answered after that transaction's commit."""
        return await self._group.submit(instance)

    async def _write_batch(self, added: Sequence[NewInstance]) -> list[AddResult | BaseException]:
        """One transaction for the batch, retried whole when another process held the lock or a
        replica deadlocked it; any other failure is every row's (none of them was committed)."""
        # a header can be megabytes (per-frame functional groups): serialised off the event loop, in one
        # worker-thread call for the whole batch (a thread hop per upload cost more than small headers)
        texts = await run_blocking(lambda: [_dump_header(new.header) for new in added])
        batch = list(zip(added, texts, strict=True))
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return await self._guard(lambda: self._insert_batch(batch))
            except IndexUnavailable as exc:
                if not transient(exc.__cause__) or attempt == WRITE_ATTEMPTS - 1:
                    return [IndexUnavailable(exc.message) for _ in batch]
            await asyncio.sleep(0.05 * (attempt + 1))  # another process held the lock, or a deadlock
        return [IndexUnavailable("the index refused the new instance") for _ in batch]

    async def _insert_batch(self, batch: Sequence[Add]) -> list[AddResult | BaseException]:
        """The batch in one transaction (:func:`app.index.batch.insert_batch`)."""
        if self._sqlite_writer is not None:
            return await run_blocking(self._insert_batch_sqlite, batch)
        async with self.engine.begin() as conn:
            return await conn.run_sync(insert_batch, batch)

    def _insert_batch_sqlite(self, batch: Sequence[Add]) -> list[AddResult | BaseException]:
        """On the synchronous SQLite connection, in the calling worker thread: one hop for the batch."""
        assert self._sqlite_writer is not None
        with self._sqlite_writer.begin() as conn:
            # Take the write lock now, waiting up to busy_timeout for another worker's batch. A deferred
            # transaction would read first and then fail at once ("database is locked", no waiting)
            # when another worker committed since its snapshot: long batches made that frequent.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return insert_batch(conn, batch)

    async def remove(self, principal: Principal, name: str) -> None:
        async with self._write_lock:
            await self._guard(lambda: self._delete(principal, name))

    async def _delete(self, principal: Principal, name: str) -> None:
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(instances.c.id, instances.c.series_pk, policy.writable(principal).label("writable")).where(
                        *_by_name(principal, name)
                    )
                )
            ).first()
            if row is None:
                raise FileNotFound(f"no stored file is named {name[:80]!r}")
            if not row.writable:
                raise Forbidden("deleting this file needs write access to it")
            await conn.execute(delete(instances).where(instances.c.id == row.id))
            await self._prune(conn, row.series_pk)

    async def _prune(self, conn: AsyncConnection, series_pk: int) -> None:
        """Remove the series, study and patient rows the deletion left empty."""
        study_pk = int(await conn.scalar(select(series.c.study_pk).where(series.c.id == series_pk)) or 0)
        if await conn.scalar(select(instances.c.id).where(instances.c.series_pk == series_pk).limit(1)) is not None:
            return
        await conn.execute(delete(series).where(series.c.id == series_pk))
        if await conn.scalar(select(series.c.id).where(series.c.study_pk == study_pk).limit(1)) is not None:
            await conn.run_sync(refresh_modalities, study_pk)
            return
        patient_pk = await conn.scalar(select(studies.c.patient_pk).where(studies.c.id == study_pk))
        await conn.execute(delete(studies).where(studies.c.id == study_pk))
        if await conn.scalar(select(studies.c.id).where(studies.c.patient_pk == patient_pk).limit(1)) is None:
            await conn.execute(delete(patients).where(patients.c.id == patient_pk))

    async def clear(self) -> None:
        async def wipe() -> None:
            async with self.engine.begin() as conn:
                for table in (instances, series, studies, patients):
                    await conn.execute(delete(table))

        async with self._write_lock:
            await self._guard(wipe)

    # -- reads ----------------------------------------------------------------------------------
    async def find_existing(self, principal: Principal, sha256: str, sop_instance_uid: str) -> AddResult | None:
        async def lookup() -> AddResult | None:
            async with self.engine.connect() as conn:
                return await conn.run_sync(existing_in, principal.name, sha256, sop_instance_uid)

        return await self._guard(lookup)

    async def header(self, principal: Principal, name: str) -> Header:
        async def lookup() -> str:
            async with self.engine.connect() as conn:
                row = (await conn.execute(select(instances.c.header).where(*_by_name(principal, name)))).first()
            if row is None:
                raise FileNotFound(f"no stored file is named {name[:80]!r}")
            return str(row.header)

        text = await self._guard(lookup)
        header: Header = await to_thread.run_sync(json.loads, text)  # parsed off the event loop
        return header

    async def exists(self, principal: Principal, name: str) -> bool:
        async def lookup() -> bool:
            async with self.engine.connect() as conn:
                found = await conn.scalar(select(instances.c.id).where(*_by_name(principal, name)))
            return found is not None

        return await self._guard(lookup)

    async def study_uid(self, principal: Principal, name: str) -> str:
        """The Study Instance UID (0020,000D) of a stored file ``principal`` may see (for audit records)."""
        statement = (
            select(studies.c.study_instance_uid)
            .select_from(
                instances.join(series, series.c.id == instances.c.series_pk).join(
                    studies, studies.c.id == series.c.study_pk
                )
            )
            .where(_name_is(name))
        )
        seen = policy.visible(principal)
        if seen is not None:
            statement = statement.where(seen)

        async def lookup() -> str:
            async with self.engine.connect() as conn:
                row = (await conn.execute(statement)).first()
            if row is None:
                raise FileNotFound(f"no stored file is named {name[:80]!r}")
            return str(row.study_instance_uid)

        return await self._guard(lookup)

    @staticmethod
    def _conditions(principal: Principal, q: ListQuery) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        seen = policy.visible(principal)
        if seen is not None:
            conditions.append(seen)
        if q.sop_instance_uid:
            conditions.append(instances.c.sop_instance_uid == q.sop_instance_uid)
        if q.series_instance_uid:
            conditions.append(series.c.series_instance_uid == q.series_instance_uid)
        if q.modality:  # the series' Modality, kept on the instance row (migration 0002)
            conditions.append(instances.c.modality == q.modality)
        if q.study_instance_uid:
            conditions.append(studies.c.study_instance_uid == q.study_instance_uid)
        if q.study_date_from:
            conditions.append(studies.c.study_date >= q.study_date_from)
        if q.study_date_to:
            conditions.append(and_(studies.c.study_date <= q.study_date_to, studies.c.study_date != ""))
        if q.patient_id:
            conditions.append(_matches(patients.c.patient_id, q.patient_id))
        if q.patient_name:
            conditions.append(_matches(patients.c.patient_name, q.patient_name, case_insensitive=True))
        return conditions

    @staticmethod
    def _filtered(q: ListQuery) -> Any:
        """``instances`` joined to only the tables the filters need."""
        source: Any = instances
        needs_patient = bool(q.patient_id or q.patient_name)
        needs_study = needs_patient or bool(q.study_instance_uid or q.study_date_from or q.study_date_to)
        if needs_study or q.series_instance_uid:
            source = source.join(series, series.c.id == instances.c.series_pk)
        if needs_study:
            source = source.join(studies, studies.c.id == series.c.study_pk)
        if needs_patient:
            source = source.join(patients, patients.c.id == studies.c.patient_pk)
        return source

    @staticmethod
    def _count(principal: Principal, q: ListQuery) -> Select[Any]:
        """``count(*)`` joining only the tables the filters need (the unfiltered count reads one index)."""
        source = SqlInstanceIndex._filtered(q)
        return select(func.count()).select_from(source).where(*SqlInstanceIndex._conditions(principal, q))

    @staticmethod
    def _page_ids(principal: Principal, q: ListQuery) -> Select[Any]:
        """The ids of one page, newest first. Skipping ``offset`` rows walks only an index of
        ``instances`` (and the filters' tables), never the joins that fill a row: a deep page
        (offset 50,000) costs a walk of ids, and only the ``limit`` rows shown are joined."""
        return (
            select(instances.c.id)
            .select_from(SqlInstanceIndex._filtered(q))
            .where(*SqlInstanceIndex._conditions(principal, q))
            .order_by(instances.c.uploaded_at_us.desc(), instances.c.id.desc())
            .limit(q.limit)
            .offset(q.offset)
        )

    async def query(self, principal: Principal, query: ListQuery) -> ListPage:
        page = (
            select(
                instances.c.name,
                patients.c.patient_id,
                patients.c.patient_name,
                studies.c.study_instance_uid,
                studies.c.study_date,
                series.c.series_instance_uid,
                instances.c.sop_instance_uid,
                series.c.modality,
                instances.c.size,
                instances.c.uploaded_at_us,
            )
            .select_from(
                instances.join(series, series.c.id == instances.c.series_pk)
                .join(studies, studies.c.id == series.c.study_pk)
                .join(patients, patients.c.id == studies.c.patient_pk)
            )
            .where(instances.c.id.in_(self._page_ids(principal, query)))
            .order_by(instances.c.uploaded_at_us.desc(), instances.c.id.desc())
        )
        count = self._count(principal, query)

        async def run() -> ListPage:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(page)).all()
                total = await conn.scalar(count)
            return ListPage([InstanceSummary(**row._mapping) for row in rows], int(total or 0))

        return await self._guard(run)

    async def find(self, principal: Principal, query: FindQuery) -> list[FindMatch]:
        statement = find_statement(principal, query)

        async def run() -> list[FindMatch]:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(statement)).all()
            return [FindMatch(**row._mapping) for row in rows]

        return await self._guard(run)

    async def study_access(self, principal: Principal, study_instance_uid: str) -> StudyAccess:
        """What ``principal`` may do with the instances of one study (for grants and share links)."""
        in_study = select(instances.c.id).select_from(
            instances.join(series, series.c.id == instances.c.series_pk).join(
                studies, studies.c.id == series.c.study_pk
            )
        )
        in_study = in_study.where(studies.c.study_instance_uid == study_instance_uid)
        seen = policy.visible(principal)
        visible = in_study if seen is None else in_study.where(seen)

        async def run() -> StudyAccess:
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(
                            visible.exists().label("visible"),
                            visible.where(policy.writable(principal)).exists().label("writable"),
                            in_study.where(instances.c.owner == principal.name).exists().label("owned"),
                        )
                    )
                ).one()
            return StudyAccess(bool(row.visible), bool(row.writable), bool(row.owned))

        return await self._guard(run)

    async def search(self, principal: Principal, query: SearchQuery) -> list[SearchRow]:
        statement = search_statement(principal, query)

        async def run() -> list[Any]:
            async with self.engine.connect() as conn:
                return list((await conn.execute(statement)).all())

        rows = await self._guard(run)
        last_key = needed_up_to(query)

        def parse() -> list[SearchRow]:  # headers parsed off the event loop, only as far as results need
            return [
                SearchRow(
                    str(row.study_instance_uid),
                    str(row.series_instance_uid),
                    str(row.sop_instance_uid),
                    str(row.modalities_in_study),
                    int(row.related_series or 0),
                    int(row.related_instances or 0),
                    parse_header(row.header, last_key) if row.header else {},
                )
                for row in rows
            ]

        return await to_thread.run_sync(parse)

    async def locate(
        self,
        principal: Principal,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
        headers: bool = False,
    ) -> list[Located]:
        statement = locate_statement(principal, study_uid, series_uid, sop_uid, headers)

        async def run() -> list[Any]:
            async with self.engine.connect() as conn:
                return list((await conn.execute(statement)).all())

        rows = await self._guard(run)

        def build() -> list[Located]:
            return [
                Located(
                    str(row.name),
                    str(row.study_instance_uid),
                    str(row.series_instance_uid),
                    str(row.sop_instance_uid),
                    str(row.sop_class_uid),
                    str(row.transfer_syntax_uid),
                    row.number_of_frames,
                    json.loads(row.header) if headers else None,
                )
                for row in rows
            ]

        return await to_thread.run_sync(build) if headers else build()

    async def names(self) -> set[str]:
        """Every stored name the index holds (start-up reconciliation with the storage folder)."""

        async def run() -> set[str]:
            async with self.engine.connect() as conn:
                return {str(name) for name in (await conn.scalars(select(instances.c.name))).all()}

        return await self._guard(run)

    async def names_between(self, low: str, high: str | None) -> set[str]:
        """The stored names from ``low`` up to (not including) ``high`` (None: no bound), read by the
        name's unique index: the sweeper asks one listing page's UUID range at a time, so a pass never
        holds every name of a large index."""
        condition = instances.c.name >= low if high is None else and_(instances.c.name >= low, instances.c.name < high)

        async def run() -> set[str]:
            async with self.engine.connect() as conn:
                return {str(name) for name in (await conn.scalars(select(instances.c.name).where(condition))).all()}

        return await self._guard(run)

    async def holds_instances(self) -> bool:
        """Whether the index holds any instance row at all (one row read, not a count)."""

        async def run() -> bool:
            async with self.engine.connect() as conn:
                return (await conn.scalar(select(instances.c.id).limit(1))) is not None

        return await self._guard(run)

    async def counts(self) -> dict[str, int]:
        """How many patients, studies, series and instances the index holds (for /metrics)."""

        async def run() -> dict[str, int]:
            async with self.engine.connect() as conn:
                return {
                    table.name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
                    for table in (patients, studies, series, instances)
                }

        return await self._guard(run)

    async def state(self, key: str) -> str | None:
        """A fact about the index itself (``index_state``), None when never recorded."""

        async def run() -> str | None:
            async with self.engine.connect() as conn:
                value = await conn.scalar(select(index_state.c.value).where(index_state.c.key == key))
            return None if value is None else str(value)

        return await self._guard(run)

    async def record_state(self, key: str, value: str, replace: bool = False) -> str:
        """Record ``value`` under ``key`` unless a value is already there (or ``replace``); return the value kept."""

        async def run() -> None:
            async with self.engine.begin() as conn:
                if replace:
                    await conn.execute(delete(index_state).where(index_state.c.key == key))
                await conn.execute(index_state.insert().values(key=key, value=value))

        async with self._write_lock:
            with contextlib.suppress(IntegrityError):  # recorded first by another process
                await self._guard(run)
        kept = await self.state(key)
        return kept if kept is not None else value

    async def ping(self) -> None:
        async def one() -> None:
            async with self.engine.connect() as conn:
                await conn.scalar(select(1))

        await self._guard(one)
