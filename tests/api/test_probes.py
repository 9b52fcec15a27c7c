"""/healthz and /readyz: readiness really writes to the storage and really asks every registered dependency."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.conftest import stored_files
from tests.mounts import remount, tmpfs_mount

pytestmark = pytest.mark.anyio


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_everything_works(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"storage": "ok", "index": "ok"}}
    assert stored_files(settings) == []  # the probe file was removed (staged or put: none left)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nobody listens there any more


async def test_readyz_names_an_unreachable_index(app: FastAPI, client: httpx.AsyncClient) -> None:
    port = closed_port()

    async def index_ping() -> None:  # what a networked index's ping does: open a connection
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.aclose()

    app.state.readiness_checks["index"] = index_ping
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["storage"] == "ok"
    assert body["checks"]["index"].startswith("failed: ")
    assert "refused" in body["checks"]["index"].lower() or "connect" in body["checks"]["index"].lower()


async def test_readyz_does_not_wait_for_a_hung_dependency(app: FastAPI, client: httpx.AsyncClient) -> None:
    """An index that accepts the connection but never answers fails after LIGHTBOX_READINESS_TIMEOUT."""
    app.state.settings = app.state.settings.model_copy(update={"readiness_timeout": 0.3})
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        async def index_ping() -> None:
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.receive()  # a reply that never comes

        app.state.readiness_checks["index"] = index_ping
        with anyio.fail_after(5):
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["index"] == "failed: no answer within 0.3 s"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs mount that the test can remount read-only (root ignores file modes, not a ro mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    with tmpfs_mount(tmp_path / "mnt", "8m") as mount:
        yield mount


async def test_readyz_fails_while_the_storage_is_read_only(tmpfs: Path, tmp_path: Path) -> None:
    # the index lives elsewhere: an open SQLite database would keep the mount from turning read-only
    database = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    app = create_app(Settings(storage_dir=tmpfs / "storage", database_url=database))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as client:
            assert (await client.get("/readyz")).status_code == 200
            remount(tmpfs, "ro")
            try:
                response = await client.get("/readyz")
                assert response.status_code == 503
                assert response.json() == {
                    "status": "unavailable",
                    "checks": {
                        "storage": "failed: storage folder is not writable: Read-only file system",
                        "index": "ok",
                    },
                }
                assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
            finally:
                remount(tmpfs, "rw")
            assert (await client.get("/readyz")).status_code == 200
