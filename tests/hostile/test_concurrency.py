"""Concurrency on a real two-worker server: duplicates are stored once, and parallel uploads, reads and
deletes of different files never mix up bytes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import sample
from tests.e2e.server import RunningServer, run_server
from tests.hostile.builders import with_new_uid

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("concurrency"), env={"LIGHTBOX_WORKERS": "2"}) as running:
        yield running


def stored(server: RunningServer) -> list[Path]:
    return sorted(p for p in server.storage.iterdir() if p.suffix == ".dcm")


def test_fifty_parallel_uploads_of_one_file_store_it_once(server: RunningServer) -> None:
    data = with_new_uid(sample("CT_small.dcm").read_bytes())
    before = stored(server)

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/upload", files={"file": (f"copy{i}.dcm", data)}) for i in range(50))
            )

    responses = asyncio.run(run())
    assert sorted(r.status_code for r in responses) == [200] * 49 + [201]
    names = {r.json()["name"] for r in responses}
    assert len(names) == 1
    (name,) = names
    assert [p.name for p in stored(server) if p not in before] == [name]
    assert (server.storage / name).read_bytes() == data


def test_parallel_uploads_reads_and_deletes_never_mix_bytes(server: RunningServer) -> None:
    seeds = ["CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm", "JPEG2000.dcm", "rtplan.dcm"]
    files = [with_new_uid(sample(seeds[i % len(seeds)]).read_bytes()) for i in range(40)]

    async def run() -> None:
        limits = httpx.Limits(max_connections=24)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:

            async def round_trip(i: int, data: bytes) -> None:
                response = await client.post("/upload", files={"file": (f"f{i}.dcm", data)})
                assert response.status_code == 201, response.text
                name = response.json()["name"]
                download = await client.get(f"/dicomFile/{name}?download")
                assert hashlib.sha256(download.content).digest() == hashlib.sha256(data).digest()
                uid = (await client.get(f"/dicomFile/{name}", params={"tag": "SOPInstanceUID"})).json()
                assert uid["data"]["value"][0] in data.decode("latin-1")
                if i % 2:
                    assert (await client.delete(f"/dicomFile/{name}")).status_code == 204
                    assert (await client.get(f"/dicomFile/{name}?download")).status_code == 404
                    assert (await client.get(f"/dicomFile/{name}", params={"tag": "Rows"})).status_code == 404

            await asyncio.gather(*(round_trip(i, data) for i, data in enumerate(files)))

    before = len(stored(server))
    asyncio.run(run())
    assert len(stored(server)) == before + 20
    listed = httpx.get(server.url + "/dicomFile", params={"limit": 1000}).json()
    assert {row["name"] for row in listed["data"]} == {p.name for p in stored(server)}
