"""Apply the Alembic migrations shipped inside the package (``app/index/migrations``) up to head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The PostgreSQL advisory lock key replicas take while migrating (any constant; "LBOX" in ASCII).
MIGRATION_LOCK = 0x4C424F58


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # replicas starting together: one migrates, the others wait here and then find the schema at head
        # (a transaction-level lock, released by the migration's commit)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (a no-op when it already is)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


def _pending(connection: Connection) -> tuple[str | None, str]:
    current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return current, head


async def pending(engine: AsyncEngine) -> tuple[str | None, str]:
    """The schema's revision and the newest one, without changing anything (for read-only storage)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_pending)
