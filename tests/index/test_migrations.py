"""Every migration (0001 up to head, and back down) on SQLite and PostgreSQL, including the audit
triggers of 0006 and the data migration of 0005 (QIDO columns filled from stored headers)."""

from __future__ import annotations

import json

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from app.index.migrate import alembic_config
from app.index.urls import async_url

pytestmark = pytest.mark.anyio

HEADER = {
    "00080030": {"vr": "TM", "Value": ["101500"]},
    "00080090": {"vr": "PN", "Value": [{"Alphabetic": "Welby^Marcus"}]},
    "00200010": {"vr": "SH", "Value": ["S1"]},
    "0008103E": {"vr": "LO", "Value": ["Axial"]},
    "00400244": {"vr": "DA", "Value": ["20200105"]},
}


async def migrate(url: str, revision: str, down: bool = False) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


async def execute(url: str, *statements: tuple[str, dict[str, object]]) -> list[tuple[object, ...]]:
    """Run ``statements`` in one transaction; the rows of the last one (if it returns rows)."""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as connection:
            result = None
            for statement, values in statements:
                result = await connection.execute(text(statement), values)
            return [tuple(row) for row in result.all()] if result is not None and result.returns_rows else []
    finally:
        await engine.dispose()


async def test_upgrade_fills_the_new_columns_from_stored_headers(database_url: str) -> None:
    await migrate(database_url, "0002")
    await execute(
        database_url,
        ("INSERT INTO patients VALUES (1, 'local', 'P1', 'Doe^Jane', '')", {}),
        ("INSERT INTO studies VALUES (1, 'local', 1, '1.2', '20200105', '', '', 'MR')", {}),
        ("INSERT INTO series VALUES (1, 'local', 1, '1.2.3', 'MR', 1)", {}),
        (
            "INSERT INTO instances (id, owner, series_pk, name, sop_class_uid, sop_instance_uid, "
            "transfer_syntax_uid, size, sha256, uploaded_at_us, header, modality) VALUES "
            "(1, 'local', 1, 'a.dcm', '1.2.840.10008.5.1.4.1.1.4', '1.2.3.4', '1.2.840.10008.1.2.1', 1, 'x', 1, "
            ":header, 'MR')",
            {"header": json.dumps(HEADER)},
        ),
    )
    await migrate(database_url, "0005_dicomweb")
    (study,) = await execute(database_url, ("SELECT study_time, referring_physician_name, study_id FROM studies", {}))
    (series,) = await execute(
        database_url, ("SELECT series_description, pps_start_date, pps_start_time FROM series", {})
    )
    assert study == ("101500", "Welby^Marcus", "S1")
    assert series == ("Axial", "20200105", "")
    await migrate(database_url, "0002", down=True)  # and back


async def test_all_the_way_down_and_up_again(database_url: str) -> None:
    await migrate(database_url, "head")
    await migrate(database_url, "base", down=True)
    assert await execute(database_url, ("SELECT count(*) FROM alembic_version", {})) == [(0,)]
    await migrate(database_url, "head")
    await execute(
        database_url,
        (
            "INSERT INTO audit_records (time_us, actor, actor_type, action, outcome) "
            "VALUES (1, 'admin', 'user', 'upload', 'success')",
            {},
        ),
    )
    with pytest.raises(SQLAlchemyError, match="append-only"):
        await execute(database_url, ("UPDATE audit_records SET actor = 'x'", {}))
    assert await execute(database_url, ("SELECT actor FROM audit_records", {})) == [("admin",)]
