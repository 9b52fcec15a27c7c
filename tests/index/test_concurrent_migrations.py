"""Replicas migrating one fresh PostgreSQL database at the same moment: the advisory lock lets one
migrate and the others find the schema at head (without it, they collide on CREATE TABLE)."""

from __future__ import annotations

import asyncio

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.index.migrate import alembic_config, upgrade
from app.index.urls import async_url
from tests import postgres

pytestmark = pytest.mark.anyio
REPLICAS = 6


async def test_replicas_migrating_at_once_all_succeed_and_migrate_once(postgres_server: str) -> None:
    with postgres.fresh_database(postgres_server) as url:
        engines = [create_async_engine(async_url(url)) for _ in range(REPLICAS)]
        try:
            for engine in engines:  # connected beforehand, so the upgrades start together
                async with engine.connect() as conn:
                    await conn.scalar(text("SELECT 1"))
            everyone = asyncio.gather(*(upgrade(engine) for engine in engines), return_exceptions=True)
            outcomes = await asyncio.wait_for(everyone, 60)  # without the lock they collide or wait on each other
            assert [o for o in outcomes if o is not None] == []
            async with engines[0].connect() as conn:
                versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
            assert [tuple(row) for row in versions] == [
                (ScriptDirectory.from_config(alembic_config()).get_current_head(),)
            ]
        finally:
            for engine in engines:
                await engine.dispose()
