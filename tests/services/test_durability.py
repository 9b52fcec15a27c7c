"""Ordering and recovery: a failed index commit or an interrupted upload leaves nothing; restarts and
``lightbox reindex`` keep the same list."""

import os
import sqlite3
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.conftest import sample, stored_files, upload

pytestmark = [pytest.mark.anyio, pytest.mark.folder_only]  # it breaks the SQLite file itself


async def test_failed_index_commit_leaves_no_orphan(client: httpx.AsyncClient, settings: Settings) -> None:
    database = settings.storage_dir / "index.sqlite3"
    with sqlite3.connect(database) as connection:  # a real database refusing the write
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON instances BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    response = await client.post("/upload", files={"file": ("ct.dcm", sample("CT_small.dcm").read_bytes())})
    assert response.status_code == 503
    assert "index" in response.json()["error"]
    assert stored_files(settings) == []
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TRIGGER refuse")
        assert connection.execute("SELECT count(*) FROM patients").fetchone() == (0,)  # rolled back whole
    assert (await client.get("/dicomFile")).json()["total"] == 0


async def test_interrupted_upload_leaves_nothing(app: FastAPI, settings: Settings) -> None:
    """The client goes away half-way through the body: no file, no staging leftover, no row."""
    data = sample("CT_small.dcm").read_bytes()
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="ct.dcm"\r\n\r\n'
    messages: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": head + data[:5000], "more_body": True},
        {"type": "http.request", "body": data[5000:9000], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/upload",
        "raw_path": b"/upload",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b"), (b"host", b"t")],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
        "state": {},
        "app": app,
    }
    await app(scope, receive, send)
    assert stored_files(settings) == []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/dicomFile")).json()["total"] == 0


async def _listing(settings: Settings) -> list[dict[str, object]]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        body = (await client.get("/dicomFile", params={"limit": 1000})).json()
        assert body["total"] == len(body["data"])
        return list(body["data"])


async def test_restart_keeps_everything_and_reindex_rebuilds_the_same_list(tmp_path: Path) -> None:
    settings = Settings(storage_dir=tmp_path / "storage")
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        names = [
            await upload(client, sample(f)) for f in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm")
        ]
        tag = (await client.get(f"/dicomFile/{names[0]}", params={"tag": "PatientName"})).json()
    before = await _listing(settings)
    assert [row["name"] for row in before] == names[::-1]

    for leftover in settings.storage_dir.glob("index.sqlite3*"):  # the database is lost
        leftover.unlink()
    (settings.storage_dir / "not-ours.txt").write_text("ignored")
    env = {**os.environ, "LIGHTBOX_STORAGE_DIR": str(settings.storage_dir)}
    result = await anyio.run_process([sys.executable, "-m", "app", "reindex"], env=env, check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert b"reindexed 4 file(s)" in result.stdout and b"files 4/4" in result.stderr
    assert await _listing(settings) == before

    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await client.get(f"/dicomFile/{names[0]}", params={"tag": "PatientName"})).json() == tag
