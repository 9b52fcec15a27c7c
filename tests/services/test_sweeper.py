"""The sweeper on the folder store, over SQLite and PostgreSQL: orphans (no row, old enough) go; rows'
blobs, young blobs, staging files and the marker stay; one replica sweeps at a time (the database
claim); the background loop runs in the app; ``lightbox sweep`` prints counts, never names."""

from __future__ import annotations

import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.auth.principals import LOCAL_ADMIN
from app.config import Settings, s3_location
from app.errors import StorageLooksWrong
from app.index.claims import JobClaim
from app.index.sql import SqlInstanceIndex
from app.main import create_app
from app.services.sweeper import JOB, SWEEP_LOCK, Sweeper, uuid_after
from app.storage.local import MARKER, LocalBlobStore
from app.storage.names import new_stored_name, object_key
from tests import seaweedfs
from tests.conftest import s3_deployment, sample

pytestmark = pytest.mark.anyio
HOUR = 3600.0


def orphan(store: LocalBlobStore, age_seconds: float, original: str = "Doe^Jane.dcm") -> str:
    """A stored blob with no index row, last changed ``age_seconds`` ago (a replica killed before its commit)."""
    name = new_stored_name(original)
    path = store.path_of(name)
    path.write_bytes(b"not indexed")
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return name


@pytest.fixture
async def served(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(storage_dir=tmp_path / "storage", database_url=database_url, sweep_interval_seconds=0)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as http:
            await stored(http, "rtstruct.dcm")  # the index is never empty here (see the test of an empty one)
            yield application, http


async def stored(http: httpx.AsyncClient, file: str) -> str:
    response = await http.post("/upload", files={"file": (file, sample(file).read_bytes())})
    assert response.status_code == 201, response.text
    name: str = response.json()["name"]
    return name


async def test_orphans_old_enough_go_and_everything_else_stays(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    application, http = served
    store, index = application.state.instances.store, application.state.index
    kept = await stored(http, "CT_small.dcm")
    old, young = orphan(store, 2 * HOUR), orphan(store, 60)
    staged = store.stage()  # an upload being received: never the sweeper's
    staged.write(b"in flight")
    removed: list[int] = []
    sweeper = Sweeper(store, index, storage_check=application.state.instances.guard.check, on_removed=removed.append)

    report = await sweeper.sweep(HOUR)

    assert report is not None
    counts = (report.examined, report.removed, report.removed_bytes, report.failed)
    assert counts == (1, 1, len(b"not indexed"), 0)  # the upload is young too: not even examined
    assert removed == [1]
    assert not store.exists(old)
    assert store.exists(young) and store.exists(kept)
    assert staged.path.is_file() and (store.root / MARKER).is_file()
    assert (await http.get(f"/dicomFile/{kept}", params={"tag": "(0010,0010)"})).status_code == 200
    staged.discard()


async def test_an_empty_index_beside_old_blobs_is_never_swept(tmp_path: Path, database_url: str) -> None:
    """A wrong LIGHTBOX_DATABASE_URL (or a lost database) must not read as "every blob is an orphan"."""
    application = create_app(Settings(storage_dir=tmp_path / "s", database_url=database_url, sweep_interval_seconds=0))
    async with application.router.lifespan_context(application):
        store = application.state.instances.store
        name = orphan(store, 2 * HOUR)
        with pytest.raises(StorageLooksWrong, match="holds no instance"):
            await Sweeper(store, application.state.index).sweep(HOUR)
        assert store.exists(name)


async def test_a_pass_compares_the_index_page_by_page(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """Pages of three blobs, each compared with the rows of its UUID range: orphans between, before and
    after the indexed blobs all go, every indexed blob stays, whichever page its neighbours fall on."""
    application, http = served
    store, index = application.state.instances.store, application.state.index
    kept = [await stored(http, file) for file in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "emri_small.dcm")]
    kept.append(next(iter(await index.names() - set(kept))))  # the fixture's own upload
    orphans = {orphan(store, 2 * HOUR) for _ in range(7)}
    for name in kept:  # old enough to be judged, like the orphans
        stamp = time.time() - 2 * HOUR
        os.utime(store.path_of(name), (stamp, stamp))

    report = await Sweeper(store, index, page_size=3).sweep(HOUR)

    assert report is not None and (report.examined, report.removed, report.failed) == (12, 7, 0)
    assert not any(store.exists(name) for name in orphans)
    assert all(store.exists(name) for name in kept)


async def test_names_between_bounds_a_uuid_range(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    application, _ = served
    index = application.state.index
    names = sorted(await index.names())
    first, last = names[0][:36], names[-1][:36]

    assert await index.names_between(first, None) == set(names)
    assert await index.names_between(first, uuid_after(last)) == set(names)  # a name starting with ``last`` is in
    assert await index.names_between(first, last) == set(names[:-1])  # up to, not including
    assert await index.names_between(str(uuid_after(last)), None) == set()
    assert await index.holds_instances()


async def test_a_blob_whose_delete_did_not_finish_is_swept(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    application, http = served
    instances = application.state.instances
    name = await stored(http, "MR_small.dcm")
    await instances.index.remove(LOCAL_ADMIN, name)
    assert instances.store.exists(name)  # the row went; the replica died before removing the blob

    report = await Sweeper(instances.store, instances.index).sweep(0)

    assert report is not None and report.removed == 1
    assert not instances.store.exists(name)


async def test_storage_that_looks_wrong_is_never_swept(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    application, http = served
    instances = application.state.instances
    await stored(http, "CT_small.dcm")
    name = orphan(instances.store, 2 * HOUR)
    (instances.store.root / MARKER).unlink()  # a foreign or re-created folder: not this index's storage

    with pytest.raises(Exception, match="marker"):
        await Sweeper(instances.store, instances.index, storage_check=instances.guard.check).sweep(0)
    assert instances.store.exists(name)


async def test_one_replica_sweeps_at_a_time_and_once_per_interval(
    served: tuple[FastAPI, httpx.AsyncClient], database_url: str
) -> None:
    application, _ = served
    store = application.state.instances.store
    name = orphan(store, 2 * HOUR)
    other = await SqlInstanceIndex.open(database_url)  # another replica's connection pool
    try:
        ours = Sweeper(store, application.state.index)
        async with JobClaim(other.engine, JOB, SWEEP_LOCK).hold() as held:
            assert held
            assert await ours.sweep(HOUR) is None  # the other replica holds the claim
            assert store.exists(name)
        report = await ours.sweep(HOUR)
        assert report is not None and report.removed == 1  # claim given back: ours sweeps
        name = orphan(store, 2 * HOUR)
        theirs = Sweeper(store, other)
        assert await theirs.sweep(HOUR, due_after_seconds=600) is None  # swept a moment ago: not due
        assert store.exists(name)
        report = await theirs.sweep(HOUR)  # an operator's `lightbox sweep`: due now
        assert report is not None and report.removed == 1
    finally:
        await other.close()


async def test_concurrent_sweeps_never_overlap(served: tuple[FastAPI, httpx.AsyncClient], database_url: str) -> None:
    application, _ = served
    store = application.state.instances.store
    for _ in range(20):
        orphan(store, 2 * HOUR)
    indexes = [await SqlInstanceIndex.open(database_url) for _ in range(4)]
    reports: list[object] = []
    try:

        async def one(index: SqlInstanceIndex) -> None:
            reports.append(await Sweeper(store, index).sweep(HOUR))

        async with anyio.create_task_group() as group:
            for index in indexes:
                group.start_soon(one, index)
    finally:
        for index in indexes:
            await index.close()
    swept = [report for report in reports if report is not None]
    assert sum(report.removed for report in swept) == 20  # type: ignore[attr-defined]
    assert all(report.failed == 0 for report in swept)  # type: ignore[attr-defined]
    assert len(list(store.list_blobs())) == 1  # the indexed one


async def test_the_app_sweeps_in_the_background(tmp_path: Path) -> None:
    settings = Settings(storage_dir=tmp_path / "storage", sweep_interval_seconds=0.2, sweep_min_age_seconds=HOUR)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        store = application.state.instances.store
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as http:
            await stored(http, "CT_small.dcm")
            old, young = orphan(store, 2 * HOUR), orphan(store, 10)
            with anyio.fail_after(10):
                while store.exists(old):
                    await anyio.sleep(0.05)
            assert store.exists(young)
            metrics = (await http.get("/metrics")).text
        assert "lightbox_swept_blobs_total 1.0" in metrics


async def test_lightbox_sweep_prints_counts_not_names(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    application = create_app(Settings(storage_dir=storage, sweep_interval_seconds=0))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as http:
            kept = await stored(http, "CT_small.dcm")
    store = LocalBlobStore(storage)
    stamp = time.time() - 2 * HOUR
    os.utime(store.path_of(kept), (stamp, stamp))  # indexed and old: kept
    names = [orphan(store, 10, "Smith^John-secret.dcm") for _ in range(3)]
    env = {**os.environ, "LIGHTBOX_STORAGE_DIR": str(storage)}
    lightbox = str(Path(sys.executable).with_name("lightbox"))

    young = await anyio.run_process([lightbox, "sweep"], env=env, check=False)
    assert young.returncode == 0, young.stderr
    assert b"examined 1 blob(s)" in young.stdout and b"removed 0" in young.stdout  # the orphans are 10 s old
    assert all(store.exists(name) for name in names)

    swept = await anyio.run_process([lightbox, "sweep", "--min-age", "0"], env=env, check=False)
    assert swept.returncode == 0, swept.stderr
    assert b"removed 3 without an index row" in swept.stdout
    said = (swept.stdout + swept.stderr).decode()
    assert "Smith" not in said and names[0][:36] not in said
    assert not any(store.exists(name) for name in names) and store.exists(kept)

    refused = await anyio.run_process([lightbox, "sweep", "--min-age", "-1"], env=env, check=False)
    assert refused.returncode == 2 and b"--min-age" in refused.stderr


async def test_the_sweeper_on_postgresql_and_s3(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Object keys are ``<uuid>.dcm``; an object put whose commit never came and one whose row was deleted
    go; the row's object, and an object not of the server's shape, stay."""
    with s3_deployment(request, tmp_path) as values:
        settings = Settings(**values, sweep_interval_seconds=0)
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            instances = application.state.instances
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as http:
                kept, deleted = await stored(http, "CT_small.dcm"), await stored(http, "MR_small.dcm")
            await instances.index.remove(LOCAL_ADMIN, deleted)  # the replica died before removing the blob
            s3, where = seaweedfs.client(values["s3_endpoint_url"]), s3_location(settings)
            assert where is not None
            never_committed = object_key(new_stored_name("Doe^Jane.dcm"))
            for key in (never_committed, "operator-notes.txt"):
                s3.put_object(Bucket=where.bucket, Key=f"{where.prefix}/{key}", Body=b"x")
            sweeper = Sweeper(instances.store, instances.index, instances.files)

            young = await sweeper.sweep(HOUR)
            assert young is not None and young.examined == 0

            report = await sweeper.sweep(0)
            assert report is not None and (report.examined, report.removed, report.failed) == (4, 2, 0)
            keys = {blob.key for blob in instances.store.list_blobs()}
            assert keys == {object_key(kept), "operator-notes.txt"}


async def test_a_uuid_range_holds_its_names_in_postgresql_language_collations(postgres_server: str) -> None:
    """The sweeper's range query relies on stored names sorting by their UUID in the database's collation:
    true in byte order (SQLite, ``C``) and, as checked here, in the glibc and ICU language collations a
    PostgreSQL database is often created with (punctuation ignored first, digits before letters)."""
    import asyncpg

    random_ids = random.Random(15)
    cases = []
    for _ in range(400):
        ids = sorted(str(uuid.UUID(int=random_ids.getrandbits(128), version=4)) for _ in range(5))
        suffix = random_ids.choice(["-a.dcm", "-Zz~-..dcm", "-0.dcm", "--x.dcm", "-a_b.DCM", "-zzzzzzzz.dcm"])
        name = random_ids.choice(ids) + suffix
        cases.append((name, ids[1], str(uuid_after(ids[3])), ids[1] <= name[:36] <= ids[3]))
    connection = await asyncpg.connect(postgres_server.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        collations = await connection.fetch(
            "SELECT collname FROM pg_collation WHERE collname IN ('C', 'en_US', 'en_US.utf8', 'en-x-icu', 'und-x-icu')"
        )
        assert len(collations) >= 2
        for (collation,) in collations:
            answers = await connection.fetch(
                f'SELECT n COLLATE "{collation}" >= lo AND n COLLATE "{collation}" < hi '
                "FROM unnest($1::text[], $2::text[], $3::text[]) AS c(n, lo, hi)",
                [case[0] for case in cases],
                [case[1] for case in cases],
                [case[2] for case in cases],
            )
            assert [answer[0] for answer in answers] == [case[3] for case in cases], collation
    finally:
        await connection.close()
