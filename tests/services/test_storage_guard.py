"""Start-up never forgets the index: an empty, unmounted or foreign storage folder is reported, not obeyed.

Each test runs the real app (lifespan, SQLite index, local folder) over ASGI; "unmounting" moves the
stored files away and "mounting back" moves them home again, while the app keeps running.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.auth.principals import LOCAL_ADMIN
from app.config import Settings
from app.index.base import InstanceSummary, ListQuery
from app.main import create_app
from app.services.storage_guard import STORAGE_ID
from app.storage.local import MARKER
from tests.conftest import sample

pytestmark = pytest.mark.anyio
MISSING = {"error": "the stored file is missing from storage"}


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as client:
            yield app, client


def separate_index(tmp_path: Path) -> Settings:
    """Storage and index apart, as with a NAS volume and a database elsewhere."""
    return Settings(storage_dir=tmp_path / "storage", database_url=f"sqlite:///{tmp_path / 'index.sqlite3'}")


async def upload(client: httpx.AsyncClient, sample_name: str) -> str:
    response = await client.post("/upload", files={"file": (sample_name, sample(sample_name).read_bytes())})
    assert response.status_code == 201, response.text
    name: str = response.json()["name"]
    return name


async def rows(app: FastAPI) -> list[InstanceSummary]:
    """Every row the index lists, with its upload time (what a re-index as new would change)."""
    page = await app.state.index.query(LOCAL_ADMIN, ListQuery(limit=1000))
    return sorted(page.items, key=lambda item: item.name)


def metric(text: str, name: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


async def test_a_start_on_an_empty_folder_forgets_nothing_and_says_why(tmp_path: Path) -> None:
    settings = separate_index(tmp_path)
    async with running(settings) as (app, client):
        ct, mr = await upload(client, "CT_small.dcm"), await upload(client, "MR_small.dcm")
        before = await rows(app)
    away = tmp_path / "away"
    settings.storage_dir.rename(away)  # the volume is not mounted: the mount point is an empty folder
    settings.storage_dir.mkdir()
    async with running(settings) as (app, client):
        assert await rows(app) == before  # nothing deleted
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "holds no stored file while the index holds 2" in ready.json()["checks"]["storage"]
        assert (await client.get("/dicomFile")).json()["total"] == 2
        tag = await client.get(f"/dicomFile/{ct}", params={"tag": "Modality"})  # answered from the index
        assert tag.status_code == 200 and tag.json()["data"]["value"] == ["CT"]
        for query in ("png", "download", "jpeg"):
            response = await client.get(f"/dicomFile/{mr}?{query}")
            assert (response.status_code, response.json()) == (503, MISSING), query
        refused = await client.post("/upload", files={"file": ("x.dcm", sample("JPGExtended.dcm").read_bytes())})
        assert refused.status_code == 503 and "uploads are refused" in refused.json()["error"]
        assert metric((await client.get("/metrics")).text, "lightbox_storage_missing_files") == 2
        assert not (settings.storage_dir / MARKER).exists()  # nothing written over a populated index

        shutil.rmtree(settings.storage_dir)  # the volume is mounted back while the service runs
        away.rename(settings.storage_dir)
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get(f"/dicomFile/{mr}?png")).status_code == 200
        assert metric((await client.get("/metrics")).text, "lightbox_storage_missing_files") == 0
        assert await rows(app) == before  # same names, owners' rows and upload times
        await upload(client, "JPGExtended.dcm")
    async with running(settings) as (app, client):  # and after a restart, nothing is indexed anew
        after = await rows(app)
        assert [row for row in after if row.name in {ct, mr}] == before and len(after) == 3
        assert (await client.get("/readyz")).status_code == 200


async def test_one_file_deleted_behind_the_service_answers_missing_and_stays_indexed(tmp_path: Path) -> None:
    settings = Settings(storage_dir=tmp_path / "storage")
    async with running(settings) as (_, client):
        kept, lost = await upload(client, "CT_small.dcm"), await upload(client, "MR_small.dcm")
    (settings.storage_dir / lost).unlink()
    async with running(settings) as (app, client):
        assert {row.name for row in await rows(app)} == {kept, lost}
        assert (await client.get("/readyz")).status_code == 200  # one lost file does not stop the service
        assert metric((await client.get("/metrics")).text, "lightbox_storage_missing_files") == 1
        response = await client.get(f"/dicomFile/{lost}?download")
        assert (response.status_code, response.json()) == (503, MISSING)
        assert (await client.get(f"/dicomFile/{kept}?png")).status_code == 200
        assert (await client.delete(f"/dicomFile/{lost}")).status_code == 204  # deleting it is still possible
        assert (await client.get(f"/dicomFile/{lost}?png")).status_code == 404


async def test_a_missing_marker_is_reported_and_not_rewritten(tmp_path: Path) -> None:
    settings = Settings(storage_dir=tmp_path / "storage")
    async with running(settings) as (app, client):
        await upload(client, "CT_small.dcm")
        recorded = await app.state.index.state(STORAGE_ID)
    marker = settings.storage_dir / MARKER
    assert json.loads(marker.read_text())["storage_id"] == recorded
    marker.unlink()
    async with running(settings) as (_, client):
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and MARKER in ready.json()["checks"]["storage"]
        assert (await client.post("/upload", files={"file": ("a.dcm", b"x")})).status_code == 503
    assert not marker.exists()


async def test_a_foreign_folder_is_reported(tmp_path: Path) -> None:
    settings = separate_index(tmp_path)
    async with running(settings) as (_, client):
        await upload(client, "CT_small.dcm")
    (settings.storage_dir / MARKER).write_text(json.dumps({"storage_id": "another-index", "format": 1}))
    async with running(settings) as (_, client):
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "belongs to another index" in ready.json()["checks"]["storage"]


async def test_an_upgrade_without_marker_gets_one(tmp_path: Path) -> None:
    """A deployment from before markers: files and rows agree, no marker, no id recorded."""
    settings = Settings(storage_dir=tmp_path / "storage")
    async with running(settings) as (app, client):
        name = await upload(client, "CT_small.dcm")
        async with app.state.index.engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM index_state")
    (settings.storage_dir / MARKER).unlink()
    async with running(settings) as (app, client):
        assert (await client.get("/readyz")).status_code == 200
        written = json.loads((settings.storage_dir / MARKER).read_text())["storage_id"]
        assert await app.state.index.state(STORAGE_ID) == written
        assert (await client.get(f"/dicomFile/{name}?png")).status_code == 200


async def test_a_marker_written_but_never_recorded_is_adopted(tmp_path: Path) -> None:
    """A crash between writing the marker and recording it in the index: the next start completes it."""
    settings = Settings(storage_dir=tmp_path / "storage")
    async with running(settings) as (app, client):
        await upload(client, "CT_small.dcm")
        async with app.state.index.engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM index_state")
    async with running(settings) as (app, client):
        assert (await client.get("/readyz")).status_code == 200
        marker = json.loads((settings.storage_dir / MARKER).read_text())["storage_id"]
        assert await app.state.index.state(STORAGE_ID) == marker


async def test_an_empty_index_on_a_populated_folder_is_not_filled_as_new(tmp_path: Path) -> None:
    """The index lost (a new database URL): the files are not re-indexed as new without the operator."""
    settings = separate_index(tmp_path)
    async with running(settings) as (_, client):
        await upload(client, "CT_small.dcm")
    fresh = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'new.sqlite3'}"})
    async with running(fresh) as (app, client):
        assert await rows(app) == []
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "lightbox reindex" in ready.json()["checks"]["storage"]


async def test_the_crash_window_is_still_repaired(tmp_path: Path) -> None:
    """A published file whose index commit never happened (same folder, same marker) is indexed at start."""
    settings = Settings(storage_dir=tmp_path / "storage")
    async with running(settings) as (_, client):
        await upload(client, "CT_small.dcm")
    orphan = "6f9c3a52-7a7e-4c1e-9d55-0c1d2e3f4a5b-orphan.dcm"
    shutil.copyfile(sample("MR_small.dcm"), settings.storage_dir / orphan)
    async with running(settings) as (app, client):
        assert orphan in {row.name for row in await rows(app)}
        assert (await client.get(f"/dicomFile/{orphan}", params={"tag": "Modality"})).json()["data"]["value"] == ["MR"]
