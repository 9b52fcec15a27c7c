"""Group commit (issue 15): concurrent adds share transactions, every outcome stays exact.

Run over SQLite and a real PostgreSQL (``database_url``); the crash test kills a real process
writing to an SQLite file and checks that every acknowledged row survived.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.auth.principals import LOCAL_ADMIN
from app.errors import IndexUnavailable, InstanceConflict
from app.index.base import AddOutcome, AddResult, NewInstance
from app.index.sql import SqlInstanceIndex
from tests.index.contract import new_instance, renamed, uid

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def index(database_url: str) -> AsyncIterator[SqlInstanceIndex]:
    opened = await SqlInstanceIndex.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def _outcome(index: SqlInstanceIndex, instance: NewInstance) -> AddResult | BaseException:
    try:
        return await index.add(instance)
    except (InstanceConflict, IndexUnavailable) as exc:
        return exc


async def test_concurrent_adds_with_duplicates_and_conflicts(index: SqlInstanceIndex) -> None:
    """40 adds at once: new files, copies of one file, and files reusing a stored SOP Instance UID
    (one stored before, one stored in the same burst). Each gets its own right outcome, the conflicts
    leave no series behind, and the adds shared commits."""
    before = new_instance(patient_id="P0")
    await index.add(before)
    study = uid()
    fresh = [new_instance(study=study, series=uid(), patient_id=f"P{n % 3}") for n in range(24)]
    copied = fresh[5]
    copies = [renamed(copied) for _ in range(8)]
    # same SOP Instance UID, different bytes, another series: must be refused and create nothing
    conflicts = [
        replace(renamed(before), sha256="1" * 64, attributes=replace(before.attributes, series_instance_uid=uid())),
        replace(renamed(fresh[7]), sha256="2" * 64, attributes=replace(fresh[7].attributes, series_instance_uid=uid())),
    ]
    batches_before = index._group.batches
    burst = [*fresh, *copies, *conflicts, *[renamed(before) for _ in range(6)]]
    outcomes = await asyncio.gather(*(_outcome(index, instance) for instance in burst))
    by_name = dict(zip((i.name for i in burst), outcomes, strict=True))

    stored_of_copied = [
        by_name[i.name] for i in [copied, *copies] if isinstance(by_name[i.name], AddResult)
    ]  # the original and its copies: exactly one stored, the others name it
    winners = [r for r in stored_of_copied if isinstance(r, AddResult) and r.outcome is AddOutcome.STORED]
    assert len(stored_of_copied) == 9 and len(winners) == 1
    assert {r.name for r in stored_of_copied if isinstance(r, AddResult)} == {winners[0].name}
    for instance in fresh:
        if instance not in (copied, fresh[7]):
            assert by_name[instance.name] == AddResult(AddOutcome.STORED, instance.name)
    for instance in burst[-6:]:
        assert by_name[instance.name] == AddResult(AddOutcome.ALREADY_STORED, before.name)
    first = by_name[conflicts[0].name]
    assert isinstance(first, InstanceConflict) and first.details() == {"name": before.name}
    # fresh[7] and a different file with its SOP Instance UID raced: one is stored, the other names it
    racers = [fresh[7], conflicts[1]]
    (won,) = [r for r in racers if by_name[r.name] == AddResult(AddOutcome.STORED, r.name)]
    (lost,) = [by_name[r.name] for r in racers if r is not won]
    assert isinstance(lost, InstanceConflict) and lost.details() == {"name": won.name}

    assert await index.counts() == {"patients": 3, "studies": 2, "series": 25, "instances": 25}
    stored = {winners[0].name, won.name, before.name} | {i.name for i in fresh if i not in (copied, fresh[7])}
    assert await index.names() == stored
    assert index._group.batches - batches_before < len(burst)  # commits were shared


async def test_a_failing_row_does_not_fail_its_batch(index: SqlInstanceIndex) -> None:
    """A row the database refuses for another reason than a duplicate (a NOT NULL column) fails
    alone; the rows written in the same transaction are stored."""
    good = [new_instance() for _ in range(5)]
    bad = replace(new_instance(), attributes=replace(new_instance().attributes, patient_id=None))  # type: ignore[arg-type]
    async with index._write_lock:  # hold the writer so that all six land in one batch
        tasks = [asyncio.ensure_future(_outcome(index, i)) for i in [*good[:3], bad, *good[3:]]]
        while len(index._group._queue) < 6:
            await asyncio.sleep(0.01)
    outcomes = await asyncio.gather(*tasks)
    assert isinstance(outcomes[3], IndexUnavailable)
    assert [o for n, o in enumerate(outcomes) if n != 3] == [AddResult(AddOutcome.STORED, i.name) for i in good]
    assert await index.names() == {i.name for i in good}


async def test_a_caller_cancelled_while_queued_writes_nothing(index: SqlInstanceIndex) -> None:
    kept, dropped = new_instance(), new_instance()
    async with index._write_lock:
        keep = asyncio.ensure_future(index.add(kept))
        drop = asyncio.ensure_future(index.add(dropped))
        while len(index._group._queue) < 2:
            await asyncio.sleep(0.01)
        drop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await drop
    assert await keep == AddResult(AddOutcome.STORED, kept.name)
    assert await index.names() == {kept.name}


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from app.index.sql import SqlInstanceIndex
    from tests.index.contract import new_instance

    async def main() -> None:
        index = await SqlInstanceIndex.open(sys.argv[1])
        async def one() -> None:
            instance = new_instance()
            await index.add(instance)
            print(instance.name, flush=True)  # acknowledged: the row must survive a crash
        while True:
            await asyncio.gather(*(one() for _ in range(8)))

    asyncio.run(main())
    """
)


async def test_every_acknowledged_row_survives_a_crash(tmp_path: Path) -> None:
    """A process adds 8 rows at a time and prints each name once ``add`` returned; it is killed
    (SIGKILL: no close, no checkpoint) mid-stream. Reopened, the index holds every printed name."""
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, url, cwd=ROOT, stdout=asyncio.subprocess.PIPE, env={**os.environ}
    )
    assert process.stdout is not None
    acknowledged: list[str] = []
    try:
        async with asyncio.timeout(120):
            while len(acknowledged) < 200:
                line = await process.stdout.readline()
                assert line, "the writer stopped before 200 rows"
                acknowledged.append(line.decode().strip())
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    reopened = await SqlInstanceIndex.open(url)
    try:
        names = await reopened.names()
        missing = [name for name in acknowledged if name not in names]
        assert not missing, f"{len(missing)} acknowledged rows lost"
        assert all([await reopened.exists(LOCAL_ADMIN, name) for name in acknowledged[-8:]])
    finally:
        await reopened.close()


async def test_two_processes_batching_at_once_never_see_a_locked_database(
    index: SqlInstanceIndex, database_url: str
) -> None:
    """Two writers on one database (two workers), each batching: a batch takes the write lock when it
    starts (SQLite ``BEGIN IMMEDIATE``), so neither fails with "database is locked" when the other
    committed since its snapshot."""
    replica = await SqlInstanceIndex.open(database_url)
    try:
        study = uid()
        items = [new_instance(study=study, series=uid() if n % 5 == 0 else None) for n in range(160)]
        outcomes = await asyncio.gather(
            *(_outcome(index if n % 2 else replica, instance) for n, instance in enumerate(items))
        )
        assert outcomes == [AddResult(AddOutcome.STORED, i.name) for i in items]
    finally:
        await replica.close()
