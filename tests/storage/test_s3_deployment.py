"""The service on PostgreSQL + S3 (SeaweedFS): what only an object store has to get right.

Object keys carry no patient data; reads go through the bounded read-through blob cache (a repeated
view makes no GET, concurrent readers fetch once, the budget holds, a delete drops the copy); a
store that goes away answers 503 and the service recovers by itself. Real SeaweedFS, real
PostgreSQL; object reads are counted on the app's real store (its fetch and open calls, wrapped).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from pydicom import dcmread

from app.config import Settings
from app.main import create_app
from app.storage.blob_cache import BlobCache, holding
from app.storage.names import new_stored_name, object_key, uuid_of_key
from app.storage.s3 import S3BlobStore
from tests import postgres, seaweedfs
from tests.conftest import s3_deployment, sample, stored_files

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """This module's own SeaweedFS. The session's, after the whole suite had run through it (hundreds of
    buckets), answered these tests' PUTs with S3 ``InternalError`` 500 in CI, reproducibly, while the
    module passes alone on it: a store in that state is SeaweedFS's to explain, not what these tests
    are about (the store going away is ``test_store_down_answers_503_and_recovers``)."""
    given = os.environ.get("LIGHTBOX_TEST_S3_ENDPOINT_URL")
    if given:
        yield given
        return
    with seaweedfs.throwaway_seaweedfs() as endpoint:
        yield endpoint


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    with s3_deployment(request, tmp_path) as values:
        yield Settings(**values)


class GetCounter:
    """Counts the reads of objects a real store makes: each ``fetch_to`` (one GET of the whole object)
    and each ``open`` (ranged GETs), wrapped on this one instance; the calls themselves run as ever."""

    def __init__(self, store: S3BlobStore) -> None:
        self.count = 0
        self._lock = threading.Lock()
        for method in ("fetch_to", "open"):
            setattr(store, method, self._counting(getattr(store, method)))

    def _counting(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any) -> Any:
            with self._lock:
                self.count += 1
            return call(*args)

        return counted


def patient_file(tmp_path: Path) -> bytes:
    dataset = dcmread(sample("CT_small.dcm"))
    dataset.PatientName = "DOE^JANE"
    dataset.PatientID = "DOE-0001"
    path = tmp_path / "doe.dcm"
    dataset.save_as(path)
    return path.read_bytes()


async def test_object_keys_carry_no_patient_data(client: httpx.AsyncClient, settings: Settings, tmp_path: Path) -> None:
    response = await client.post("/upload", files={"file": ("DOE^JANE.dcm", patient_file(tmp_path))})
    assert response.status_code == 201, response.text
    name = response.json()["name"]
    assert "DOE" in name  # the API name keeps the client's (reduced) file name ...
    keys = stored_files(settings)
    assert keys == [object_key(name)]  # ... exactly one object, keyed by the UUID alone
    assert not any("DOE" in key.upper() or "JANE" in key.upper() for key in keys)
    assert uuid_of_key(keys[0]) == name[:36]


async def test_repeated_views_fetch_the_object_once_and_delete_drops_the_copy(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    data = sample("CT_small.dcm").read_bytes()
    name = (await client.post("/upload", files={"file": ("ct.dcm", data)})).json()["name"]
    store: S3BlobStore = app.state.instances.store
    gets = GetCounter(store)
    for size in (64, 32, 16):  # different renders: the render cache cannot answer, the file is read each time
        response = await client.get(f"/dicomFile/{name}", params={"png": "", "size": size})
        assert response.status_code == 200
    assert (await client.get(f"/dicomFile/{name}", params={"tag": "PixelData"})).status_code == 200
    download = await client.get(f"/dicomFile/{name}", params={"download": ""})
    assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert gets.count == 1
    cache: BlobCache = app.state.caches["blobs"]
    assert cache.misses == 1 and cache.hits >= 4
    copy = cache.folder / object_key(name)
    assert copy.is_file()
    assert (await client.delete(f"/dicomFile/{name}")).status_code == 204
    assert not copy.exists() and cache.total_bytes == 0
    assert stored_files(settings) == []


def test_cache_budget_lru_and_single_fetch(tmp_path: Path, s3_endpoint: str) -> None:
    with seaweedfs.fresh_bucket(seaweedfs.client(s3_endpoint)) as bucket:
        store = seaweedfs.blob_store(s3_endpoint, bucket, "instances", tmp_path / "staging")
        keys = []
        for index in range(5):
            staged = store.stage()
            staged.write(bytes([index]) * 100_000)
            staged.flush_to_disk()
            key = object_key(new_stored_name("x.dcm"))
            store.put(staged, key)
            keys.append(key)
        gets = GetCounter(store)
        cache = BlobCache(store, tmp_path / "cache", budget=250_000)  # room for two copies
        cache.prepare()
        with ThreadPoolExecutor(8) as pool:  # eight readers of one key at once: one fetch
            paths = list(pool.map(lambda _: cache.local_path(keys[0]), range(8)))
        assert gets.count == 1 and len(set(paths)) == 1 and paths[0].read_bytes() == bytes([0]) * 100_000
        cache.local_path(keys[1])
        cache.local_path(keys[0])  # read again: now the most recent
        cache.local_path(keys[2])  # over budget: keys[1], least recently read, goes
        on_disk = sorted(p.name for p in cache.folder.iterdir())
        assert on_disk == sorted([keys[0], keys[2]])
        assert cache.total_bytes == sum(p.stat().st_size for p in cache.folder.iterdir()) <= 250_000
        for key in keys:
            cache.local_path(key)
            assert sum(p.stat().st_size for p in cache.folder.iterdir()) <= 250_000
        assert gets.count == 7  # 3 above, then keys[1..4] again (keys[0] was still there)
        restarted = BlobCache(store, tmp_path / "cache", budget=250_000)  # copies survive a restart
        restarted.prepare()
        restarted.local_path(keys[4])
        assert restarted.hits == 1 and gets.count == 7


def test_copies_handed_out_to_a_holder_are_not_evicted_before_it_ends(tmp_path: Path, s3_endpoint: str) -> None:
    """A budget smaller than what is read at once: without a holder the first path is gone before its
    reader opens it; inside :func:`holding` every path handed out stays until the block ends."""
    with seaweedfs.fresh_bucket(seaweedfs.client(s3_endpoint)) as bucket:
        store = seaweedfs.blob_store(s3_endpoint, bucket, "instances", tmp_path / "staging")
        keys = []
        for index in range(3):
            staged = store.stage()
            staged.write(bytes([index]) * 100_000)
            staged.flush_to_disk()
            keys.append(object_key(new_stored_name("x.dcm")))
            store.put(staged, keys[-1])
        cache = BlobCache(store, tmp_path / "cache", budget=150_000)  # room for one copy
        cache.prepare()
        first = cache.local_path(keys[0])
        cache.local_path(keys[1])
        assert not first.exists()  # the edge: evicted before anyone opened it
        with holding():
            first = cache.local_path(keys[0])
            second = cache.local_path(keys[1])
            with ThreadPoolExecutor(2) as pool:  # worker threads of the holder pin too (context copied)
                third = pool.submit(contextvars.copy_context().run, cache.local_path, keys[2]).result()
            assert [p.read_bytes()[:1] for p in (first, second, third)] == [b"\x00", b"\x01", b"\x02"]
            assert cache.pinned == 3 and cache.total_bytes == 300_000  # over the budget while held
        assert cache.pinned == 0 and cache.total_bytes <= 150_000
        assert sorted(p.name for p in cache.folder.iterdir()) == [keys[2]]  # the most recent stays


async def test_concurrent_downloads_beyond_the_cache_budget(client: httpx.AsyncClient, app: FastAPI) -> None:
    """Each request holds the copies it reads until its response is sent (app.api.blob_holding): with a
    budget of one byte, concurrent downloads of different files all get their bytes, and release them."""
    files = {name: sample(name).read_bytes() for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")}
    stored = {(await client.post("/upload", files={"file": (n, d)})).json()["name"]: d for n, d in files.items()}
    cache: BlobCache = app.state.caches["blobs"]
    cache.budget = 1

    async def download(name: str) -> bytes:
        response = await client.get(f"/dicomFile/{name}", params={"download": ""})
        assert response.status_code == 200, response.text
        return response.content

    names = [name for name in stored for _ in range(4)]
    answers = await asyncio.gather(*(download(name) for name in names))
    assert [hashlib.sha256(a).digest() for a in answers] == [hashlib.sha256(stored[n]).digest() for n in names]
    assert cache.pinned == 0 and list(cache.folder.iterdir()) == []  # released, then over the budget: gone


@pytest.mark.slow
async def test_store_down_answers_503_and_recovers(tmp_path: Path, postgres_server: str) -> None:
    monkeypatch = pytest.MonkeyPatch()
    for variable, value in seaweedfs.aws_environment().items():
        monkeypatch.setenv(variable, value)
    try:
        with seaweedfs.weed_server() as weed, postgres.fresh_database(postgres_server) as url:
            s3 = seaweedfs.client(weed.endpoint)
            s3.create_bucket(Bucket="lightbox-down")
            settings = Settings(
                storage_url="s3://lightbox-down/instances",
                s3_endpoint_url=weed.endpoint,
                database_url=url,
                staging_dir=tmp_path / "staging",
                blob_cache_dir=tmp_path / "cache",
            )
            app = create_app(settings)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
            ):
                name = (
                    await client.post("/upload", files={"file": ("ct.dcm", sample("CT_small.dcm").read_bytes())})
                ).json()["name"]
                assert (await client.get("/readyz")).status_code == 200
                weed.stop()
                ready = await client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["checks"]["storage"].startswith("failed")
                for call in (
                    client.get(f"/dicomFile/{name}", params={"download": ""}),
                    client.post("/upload", files={"file": ("mr.dcm", sample("MR_small.dcm").read_bytes())}),
                ):
                    answer = await call
                    assert answer.status_code == 503 and set(answer.json()) == {"error"}, answer.text
                    assert "ct.dcm" not in answer.text
                weed.start()
                assert (await client.get("/readyz")).status_code == 200
                deadline = time.monotonic() + 30  # the store's volume server registers a moment after its gateway
                while (download := await client.get(f"/dicomFile/{name}", params={"download": ""})).status_code != 200:
                    assert download.status_code == 503 and time.monotonic() < deadline, download.text
                    await anyio.sleep(0.5)
                mr = await client.post("/upload", files={"file": ("mr.dcm", sample("MR_small.dcm").read_bytes())})
                assert mr.status_code == 201
    finally:
        monkeypatch.undo()
