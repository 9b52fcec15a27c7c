"""AuditService and its SQL store on a real SQLite index and a real PostgreSQL: batching, order, refusal,
append-only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from app.auth.principals import LOCAL_ADMIN, ActorType, Principal
from app.errors import AuditUnavailable, FileNotFound, Forbidden, IndexUnavailable
from app.index.audit import AuditQuery, AuditRecord, SqlAuditLog
from app.index.sql import SqlInstanceIndex
from app.services.audit import ATNA_EVENTS, Action, AuditService, Outcome, _detail_text
from app.services.audit_view import as_dict, iso_time

pytestmark = pytest.mark.anyio


@pytest.fixture
async def index(database_url: str) -> AsyncIterator[SqlInstanceIndex]:
    opened = await SqlInstanceIndex.open(database_url)
    yield opened
    await opened.close()


@pytest.fixture
async def audit(index: SqlInstanceIndex) -> AsyncIterator[AuditService]:
    service = AuditService(SqlAuditLog(index.engine), flush_seconds=0.05, max_pending=100)
    await service.start()
    yield service
    await service.close()


async def all_records(service: AuditService) -> list[dict[str, object]]:
    await service.flush()
    page = await service.store.search(AuditQuery(limit=1000))
    return [as_dict(record) for record in reversed(page.records)]


def test_every_action_maps_to_a_dicom_audit_event() -> None:
    assert set(ATNA_EVENTS) == set(Action)
    assert Action.LIST.event.code == "110112" and Action.TAG.event.meaning == "DICOM Instances Accessed"
    assert {event.action_code for event in ATNA_EVENTS.values()} <= {"C", "R", "U", "D", "E"}


async def test_records_are_written_in_the_background_in_order(audit: AuditService) -> None:
    for number in range(20):
        audit.record(LOCAL_ADMIN, Action.TAG, name=f"n{number}.dcm")
    deadline = asyncio.get_running_loop().time() + 10
    records: list[AuditRecord] = []
    while len(records) < 20 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
        records = (await audit.store.search(AuditQuery(limit=1000))).records  # the store, never flushed here
    assert [r.name for r in reversed(records)] == [f"n{n}.dcm" for n in range(20)]


async def test_a_failed_write_keeps_the_records_queued_in_order(tmp_path: Path, audit: AuditService) -> None:
    real_store = audit.store
    unmigrated = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}")
    audit.store = SqlAuditLog(unmigrated)  # a database without the table: every write fails
    try:
        audit.record(LOCAL_ADMIN, Action.LOGIN, reason=None)
        with pytest.raises(IndexUnavailable):
            await audit.flush()
        audit.record(LOCAL_ADMIN, Action.LOGOUT)
        with pytest.raises(IndexUnavailable):
            await audit.flush()
    finally:
        audit.store = real_store
        await unmigrated.dispose()
    await audit.flush()
    assert [r["action"] for r in await all_records(audit)] == ["login", "logout"]


async def test_a_full_or_closed_queue_refuses_the_record(index: SqlInstanceIndex) -> None:
    service = AuditService(SqlAuditLog(index.engine), flush_seconds=10, max_pending=2)
    await service.start()
    service.record(LOCAL_ADMIN, Action.TAG)
    service.record(LOCAL_ADMIN, Action.TAG)
    assert not service.has_room()
    with pytest.raises(AuditUnavailable):
        service.record(LOCAL_ADMIN, Action.TAG)
    await service.close()  # writes the two it took
    with pytest.raises(AuditUnavailable):
        service.record(LOCAL_ADMIN, Action.TAG)
    assert [r["action"] for r in await all_records(service)] == ["tag", "tag"]


async def test_outcomes_of_errors_and_credentials_never_kept(audit: AuditService) -> None:
    share = Principal("share:12", actor_type=ActorType.SHARE)
    audit.failed(share, Action.DELETE, Forbidden("read only"), name="a.dcm")
    audit.failed(share, Action.TAG, FileNotFound("no"), name="b.dcm")
    audit.record(
        LOCAL_ADMIN,
        Action.KEY_CREATE,
        detail={"key_id": 5, "scope": "read", "password": "p", "api_key": "k", "token": "t", "note": "lbx_1_x"},
    )
    records = await all_records(audit)
    assert [(r["actor"], r["actor_type"], r["outcome"], r["reason"]) for r in records[:2]] == [
        ("share:12", "share", Outcome.DENIED, "forbidden"),
        ("share:12", "share", Outcome.FAILURE, "file_not_found"),
    ]
    assert records[2]["detail"] == {"key_id": 5, "scope": "read"}


async def test_reading_needs_an_administrator_and_is_itself_recorded(audit: AuditService) -> None:
    with pytest.raises(Forbidden):
        await audit.search(Principal("bob"), AuditQuery())
    page = await audit.search(LOCAL_ADMIN, AuditQuery(action="audit_read"))
    assert [(r.actor, r.outcome) for r in page.records] == [("bob", "denied")]  # this read is queued after
    await audit.flush()
    assert [r["outcome"] for r in await all_records(audit)] == ["denied", "success"]


@pytest.mark.parametrize(
    "statement", ["DELETE FROM audit_records", "UPDATE audit_records SET actor = 'x'", "TRUNCATE audit_records"]
)
async def test_the_database_refuses_to_rewrite_history(
    index: SqlInstanceIndex, audit: AuditService, statement: str
) -> None:
    if statement.startswith("TRUNCATE") and index.engine.dialect.name != "postgresql":
        statement = "DELETE FROM audit_records WHERE id > 0"  # SQLite has no TRUNCATE: its DELETE is that
    audit.record(LOCAL_ADMIN, Action.UPLOAD, name="kept.dcm")
    await audit.flush()
    with pytest.raises(SQLAlchemyError, match="append-only"):
        async with index.engine.begin() as conn:
            await conn.execute(text(statement))
    assert [r["name"] for r in await all_records(audit)] == ["kept.dcm"]


def test_times_are_iso_utc_with_microseconds() -> None:
    assert iso_time(1_764_658_051_123_456) == "2025-12-02T06:47:31.123456Z"


async def test_text_no_database_can_encode_is_kept_readable_and_never_stalls_the_trail(audit: AuditService) -> None:
    """A lone surrogate (JSON's ``"\\ud800"`` in a request body) cannot be encoded as UTF-8 by either database
    driver; like NUL, it is stored as U+FFFD and the records after it are written."""
    audit.record(LOCAL_ADMIN, Action.LOGIN, detail={"username": "a\ud800b\x00"}, name="x\udc80.dcm", reason="r\ud800")
    audit.record(LOCAL_ADMIN, Action.LOGOUT)
    records = await all_records(audit)
    assert [r["action"] for r in records] == ["login", "logout"]
    assert records[0]["detail"] == {"username": "a\ufffdb\ufffd"}
    assert (records[0]["name"], records[0]["reason"]) == ("x\ufffd.dcm", "r\ufffd")


async def test_a_record_the_database_refuses_is_dropped_alone(audit: AuditService) -> None:
    """The net under :meth:`AuditService.record`'s cleaning: a record that reached the queue with text no
    database holds (put there directly; ``record`` never queues one) fails its batch; the batch is then
    written record by record, the refused one dropped, the others kept in order."""
    audit.record(LOCAL_ADMIN, Action.LOGIN)
    refused = audit._pending[0]._replace(action="tag", name="x\ud800.dcm")
    audit._pending.append(refused)
    audit.record(LOCAL_ADMIN, Action.LOGOUT)
    assert [r["action"] for r in await all_records(audit)] == ["login", "logout"]


async def test_a_big_batch_is_stored_whole_in_order_with_few_sqlite_statements(index: SqlInstanceIndex) -> None:
    """1,201 records in one append: every one stored, in order, field for field. On SQLite in three INSERT
    statements (500 rows each): an executemany steps once per row, giving up the GIL around each step,
    which behind a busy event loop made flushes take seconds and the full queue refuse lookups."""
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append(statement)

    store = SqlAuditLog(index.engine)
    records = [
        AuditRecord(
            time_us=1_000_000 + number,
            actor=f"user{number % 7}",
            actor_type="user",
            action="tag",
            outcome="success" if number % 5 else "failure",
            reason=None if number % 5 else "file_not_found",
            study_instance_uid=f"1.2.{number}",
            name=f"n{number}.dcm",
            client="127.0.0.1",
            request_id=f"r{number}",
            detail=None if number % 3 else '{"tag": "00100010"}',
        )
        for number in range(1201)
    ]
    event.listen(index.engine.sync_engine, "before_cursor_execute", count)
    try:
        await store.append(records)
    finally:
        event.remove(index.engine.sync_engine, "before_cursor_execute", count)
    page = await store.search(AuditQuery(limit=2000))
    assert list(reversed(page.records)) == records
    if index.engine.dialect.name == "sqlite":
        assert len(statements) == 3


def test_a_details_json_is_remembered_by_value_and_type() -> None:
    """True, 1 and 1.0 are one key to a dict; the remembered detail text keeps them apart."""
    assert [_detail_text({"n": value}) for value in (True, 1, 1.0, "1")] == [
        '{"n": true}',
        '{"n": 1}',
        '{"n": 1.0}',
        '{"n": "1"}',
    ]
