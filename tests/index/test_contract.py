"""The InstanceIndex contract, run over SQLite and a real PostgreSQL (``database_url`` fixture).

Two :class:`SqlInstanceIndex` objects on one database stand for two replicas: each has its own
per-process write lock, so only the database's unique constraints can decide their races.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy import select, text

from app.auth.principals import LOCAL_ADMIN, Principal
from app.errors import FileNotFound, InstanceConflict
from app.index.base import AddOutcome, ListQuery
from app.index.schema import instances, patients
from app.index.sql import SqlInstanceIndex
from tests.index.contract import new_instance, renamed, uid

pytestmark = pytest.mark.anyio
ALICE = Principal("alice")
BOB = Principal("bob")


@pytest.fixture
async def index(database_url: str) -> AsyncIterator[SqlInstanceIndex]:
    opened = await SqlInstanceIndex.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def replica(database_url: str, index: SqlInstanceIndex) -> AsyncIterator[SqlInstanceIndex]:
    """A second index on the same database, opened after the first (which migrated it)."""
    opened = await SqlInstanceIndex.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def test_add_lookup_list_and_remove(index: SqlInstanceIndex) -> None:
    first = new_instance("alice", uploaded_at_us=1)
    second = new_instance("alice", study=first.attributes.study_instance_uid, modality="MR", uploaded_at_us=2)
    for instance in (first, second):
        assert (await index.add(instance)).outcome is AddOutcome.STORED
    assert await index.exists(ALICE, first.name)
    assert not await index.exists(BOB, first.name)
    assert (await index.header(ALICE, first.name))["00080018"]["Value"] == [first.attributes.sop_instance_uid]
    page = await index.query(ALICE, ListQuery())
    assert [row.name for row in page.items] == [second.name, first.name] and page.total == 2
    assert page.items[0].size == second.size and isinstance(page.items[0].uploaded_at_us, int)
    assert (await index.query(ALICE, ListQuery(modality="MR"))).total == 1
    assert (await index.query(BOB, ListQuery())).total == 0
    assert await index.study_uid(ALICE, first.name) == first.attributes.study_instance_uid
    access = await index.study_access(ALICE, first.attributes.study_instance_uid)
    assert (access.visible, access.writable, access.owned) == (True, True, True)
    assert await index.counts() == {"patients": 1, "studies": 1, "series": 2, "instances": 2}
    await index.remove(ALICE, first.name)
    with pytest.raises(FileNotFound):
        await index.header(ALICE, first.name)
    await index.remove(ALICE, second.name)
    assert await index.counts() == {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    assert await index.names() == set()


async def test_duplicates_and_conflicts_are_decided_by_the_constraints(index: SqlInstanceIndex) -> None:
    stored = new_instance()
    await index.add(stored)
    again = await index.add(renamed(stored))
    assert (again.outcome, again.name) == (AddOutcome.ALREADY_STORED, stored.name)
    other_bytes = replace(renamed(stored), sha256="0" * 64)
    with pytest.raises(InstanceConflict):
        await index.add(other_bytes)
    assert await index.add(replace(renamed(stored), owner="bob"))  # another owner's copy is theirs
    assert (await index.counts())["instances"] == 2


async def test_wildcards_escape_and_case(index: SqlInstanceIndex) -> None:
    """``*``/``?`` are wildcards; SQL's ``%``, ``_`` and ``\\`` are literal; names match in any case."""
    plain = new_instance(patient_id="AB_1", patient_name="Doe^Jane")
    tricky = new_instance(patient_id="AB%1\\x", patient_name="DOE^JOHN")
    other = new_instance(patient_id="ABX1", patient_name="Roe^Ann")
    for instance in (plain, tricky, other):
        await index.add(instance)

    async def ids(**filters: str) -> set[str]:
        page = await index.query(LOCAL_ADMIN, ListQuery(**filters))  # type: ignore[arg-type]
        return {row.patient_id for row in page.items}

    assert await ids(patient_id="AB_1") == {"AB_1"}
    assert await ids(patient_id="AB_*") == {"AB_1"}
    assert await ids(patient_id="AB%*") == {"AB%1\\x"}
    assert await ids(patient_id="AB?1*") == {"AB_1", "AB%1\\x", "ABX1"}
    assert await ids(patient_id="*\\x") == {"AB%1\\x"}
    assert await ids(patient_name="doe^*") == {"AB_1", "AB%1\\x"}
    assert await ids(patient_name="DOE^JANE") == {"AB_1"}


async def test_concurrent_identical_adds_store_one_row(index: SqlInstanceIndex, replica: SqlInstanceIndex) -> None:
    """Twenty copies through two 'replicas' at once: one STORED, the rest name the winner."""
    original = new_instance()
    copies = [renamed(original) for _ in range(20)]
    results = await asyncio.gather(*((index if n % 2 else replica).add(copy) for n, copy in enumerate(copies)))
    stored = [r for r in results if r.outcome is AddOutcome.STORED]
    assert len(stored) == 1
    assert {r.name for r in results} == {stored[0].name}
    assert await index.counts() == {"patients": 1, "studies": 1, "series": 1, "instances": 1}


async def test_concurrent_series_of_one_study_keep_the_study_right(
    index: SqlInstanceIndex, replica: SqlInstanceIndex
) -> None:
    """Series of one study added at the same moment by two replicas: one study row, every modality."""
    study = uid()
    modalities = ["CT", "MR", "PT", "US", "NM", "XA"]
    instances = [new_instance(study=study, modality=m) for m in modalities for _ in range(2)]
    results = await asyncio.gather(
        *((index if n % 2 else replica).add(instance) for n, instance in enumerate(instances))
    )
    assert all(r.outcome is AddOutcome.STORED for r in results)
    assert await index.counts() == {"patients": 1, "studies": 1, "series": 12, "instances": 12}
    from app.dicom.qido import Level, parse_search

    (row,) = await index.search(LOCAL_ADMIN, parse_search(Level.STUDY, []))
    assert row.modalities_in_study.split("\\") == sorted(modalities)
    assert (row.related_series, row.related_instances) == (12, 12)


async def test_state_is_recorded_once(index: SqlInstanceIndex, replica: SqlInstanceIndex) -> None:
    kept = await asyncio.gather(index.record_state("storage_id", "a"), replica.record_state("storage_id", "b"))
    assert kept[0] == kept[1] and await index.state("storage_id") == kept[0]
    assert await index.record_state("storage_id", "c", replace=True) == "c"
    assert await replica.state("missing") is None
    await index.ping()


async def test_row_ids_beyond_32_bits(index: SqlInstanceIndex) -> None:
    """Ids past 2**31 (an archive that has ingested and pruned for years) are stored and followed."""
    start = 3_000_000_000
    async with index.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for table in ("patients", "studies", "series", "instances"):
                await conn.execute(
                    text("SELECT setval(:sequence, :start)"), {"sequence": f"{table}_id_seq", "start": start}
                )
        else:  # SQLite gives the next rowid after the largest: make the largest a big one
            await conn.execute(
                patients.insert().values(id=start, owner="x", patient_id="x", patient_name="", patient_birth_date="")
            )
    first = new_instance("alice")
    await index.add(first)
    await index.add(new_instance("alice", study=first.attributes.study_instance_uid))
    async with index.engine.connect() as conn:
        patient = await conn.scalar(select(patients.c.id).where(patients.c.owner == "alice"))
        ids = (await conn.execute(select(instances.c.id, instances.c.series_pk))).all()
    assert patient is not None and patient > start
    if index.engine.dialect.name == "postgresql":  # every id column is bigint (migration 0007)
        assert all(row_id > start for row in ids for row_id in row)
    assert (await index.query(ALICE, ListQuery())).total == 2
    await index.remove(ALICE, first.name)
    assert (await index.query(ALICE, ListQuery())).total == 1
