"""``lightbox migrate`` and replicas starting together on one fresh PostgreSQL database: every process
comes up, the schema is migrated once (an advisory lock serialises them), ``admin`` is created once."""

from __future__ import annotations

import asyncio
import os
import subprocess
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import httpx

from app.index.migrate import alembic_config
from tests import postgres
from tests.auth.world import ADMIN_PASSWORD, AUTH_ENV, basic
from tests.e2e.server import LIGHTBOX, run_server, wait_until_ready

MIGRATORS = 4
REPLICAS = 2


async def rows(url: str, query: str) -> list[tuple[object, ...]]:
    connection = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await connection.fetch(query)]
    finally:
        await connection.close()


def test_migrations_and_replicas_starting_at_once_migrate_once(tmp_path: Path, postgres_server: str) -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with postgres.fresh_database(postgres_server) as url, ExitStack() as stack:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")},
            **AUTH_ENV,
            "LIGHTBOX_DATABASE_URL": url,
            "LIGHTBOX_STORAGE_DIR": str(tmp_path / "shared"),
        }
        migrators = [
            subprocess.Popen([LIGHTBOX, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(MIGRATORS)
        ]
        servers = []
        for n in range(REPLICAS):
            folder = tmp_path / f"replica-{n}"
            folder.mkdir()
            replica_env = {**AUTH_ENV, "LIGHTBOX_DATABASE_URL": url}
            servers.append(stack.enter_context(run_server(folder, tmp_path / "shared", env=replica_env, wait=False)))
        for process in migrators:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err.decode()
            assert f"index schema at revision {head} (head)" in out.decode()
        for server in servers:
            wait_until_ready(server, "/readyz", seconds=60)
            answer = httpx.get(server.url + "/dicomFile", headers=basic("admin", ADMIN_PASSWORD), timeout=30)
            assert answer.status_code == 200, answer.text
        assert asyncio.run(rows(url, "SELECT version_num FROM alembic_version")) == [(head,)]
        assert asyncio.run(rows(url, "SELECT username FROM users")) == [("admin",)]
        created = asyncio.run(rows(url, "SELECT count(*) FROM audit_records WHERE action = 'user_create'"))
        assert created == [(1,)]
