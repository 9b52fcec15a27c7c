"""pynetdicom's own SCU against the listener of a real app (its lifespan, SQLite, storage) on 127.0.0.1.

The client blocks, so it runs in a worker thread while the app's event loop serves the handlers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pydicom
import pytest
from anyio import to_thread
from fastapi import FastAPI
from pydantic import SecretStr
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

from app.auth.principals import LOCAL_ADMIN, Principal, Role
from app.config import Settings
from app.main import create_app
from tests.conftest import sample
from tests.e2e.server import free_port

pytestmark = pytest.mark.anyio
T = TypeVar("T")
PEERS = "ALICE@127.0.0.1:alice,BOB@127.0.0.1:bob,FAR@10.0.0.5:alice"


PASSWORD = "dimse-peer-password"
USERS = ("alice", "bob")


def with_auth(**values: Any) -> Settings:
    """Settings with access control on: each peer acts as its own, non-administrator user."""
    return Settings(auth_required=True, admin_password=SecretStr(PASSWORD), **values)


@asynccontextmanager
async def running(settings: Settings, users: tuple[str, ...] = USERS) -> AsyncIterator[FastAPI]:
    """A real app (lifespan, SQLite, listener) with ``users`` added through the users service."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        for name in users if settings.auth_required else ():
            await application.state.users.add(LOCAL_ADMIN, name, PASSWORD, Role.USER)
        yield application


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return with_auth(
        storage_dir=tmp_path / "storage",
        dimse_port=free_port(),
        dimse_peers=PEERS,
        dimse_acse_timeout=1,
        dimse_idle_timeout=2,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(settings) as application:
        yield application


def client(ae_title: str, contexts: list[Any] | None = None) -> AE:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for context in contexts or [Verification]:
        ae.add_requested_context(context)
    return ae


def associate(ae: AE, settings: Settings, **kwargs: Any) -> Association:
    assert settings.dimse_port is not None
    return ae.associate("127.0.0.1", settings.dimse_port, ae_title="LIGHTBOX", **kwargs)


async def in_thread(work: Callable[[], T]) -> T:
    return await to_thread.run_sync(work)


def tiny(patient: str, study: str | None = None) -> Dataset:
    """A small, valid Secondary Capture instance with fresh UIDs."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = patient
    ds.PatientName = f"{patient}^Test"
    ds.Modality = "OT"
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = b"\x00\x40\x80\xff"
    return ds


def store(ae_title: str, settings: Settings, datasets: list[Dataset]) -> list[Dataset]:
    ae = client(ae_title, [CTImageStorage, MRImageStorage, SecondaryCaptureImageStorage])
    ae.add_requested_context(MRImageStorage, RLELossless)  # a context of its own: the listener accepts RLE
    assoc = associate(ae, settings)
    assert assoc.is_established
    try:
        return [assoc.send_c_store(ds) for ds in datasets]
    finally:
        assoc.release()


def find(ae_title: str, settings: Settings, identifier: Dataset, model: Any) -> list[tuple[int, Dataset | None]]:
    assoc = associate(client(ae_title, [model]), settings)
    assert assoc.is_established
    try:
        return [(int(status.Status), answer) for status, answer in assoc.send_c_find(identifier, model)]
    finally:
        assoc.release()


def get(ae_title: str, settings: Settings, identifier: Dataset) -> tuple[list[str], int]:
    """A C-GET (Study Root) as ``ae_title``: the SOP Instance UIDs received and the final status."""
    received: list[str] = []

    def on_store(event: Any) -> int:
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    ae = client(ae_title, [StudyRootQueryRetrieveInformationModelGet, SecondaryCaptureImageStorage])
    roles = [build_role(SecondaryCaptureImageStorage, scp_role=True)]
    assoc = associate(ae, settings, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    last = 0
    try:
        for status, _ in assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet):
            last = int(status.Status)
    finally:
        assoc.release()
    return received, last


async def test_echo(app: FastAPI, settings: Settings) -> None:
    def echo() -> int:
        assoc = associate(client("ALICE"), settings)
        assert assoc.is_established
        status = assoc.send_c_echo()
        assoc.release()
        return int(status.Status)

    assert await in_thread(echo) == 0x0000


@pytest.mark.parametrize("ae_title", ["STRANGER", "FAR"])  # unknown; known but from another address
async def test_unknown_or_misplaced_calling_ae_is_rejected(app: FastAPI, settings: Settings, ae_title: str) -> None:
    def attempt() -> tuple[bool, Any]:
        assoc = associate(client(ae_title), settings)
        return assoc.is_rejected, assoc.acceptor.primitive

    rejected, primitive = await in_thread(attempt)
    assert rejected
    assert (primitive.result, primitive.result_source, primitive.diagnostic) == (0x01, 0x01, 0x03)


async def test_store_then_http_sees_it_and_a_resend_is_success(app: FastAPI, settings: Settings) -> None:
    sent = pydicom.dcmread(sample("CT_small.dcm"))
    statuses = await in_thread(lambda: store("ALICE", settings, [sent, sent]))
    assert [int(s.Status) for s in statuses] == [0x0000, 0x0000]
    page = await app.state.instances.list(Principal("alice"), _list_all())
    assert [item.sop_instance_uid for item in page.items] == [str(sent.SOPInstanceUID)]
    path = await app.state.instances.file_path(Principal("alice"), page.items[0].name)
    stored = pydicom.dcmread(path)
    assert stored.file_meta.SourceApplicationEntityTitle == "ALICE"
    assert {e.tag: e.value for e in stored} == {e.tag: e.value for e in sent}  # byte for byte, even its padding


async def test_invalid_data_set_is_cannot_understand_and_association_goes_on(app: FastAPI, settings: Settings) -> None:
    bad = tiny("P1")
    bad.SeriesInstanceUID = ["1.2.3", "1.2.4"]  # two values cannot identify one series: ingest refuses it
    good = tiny("P1")
    statuses = await in_thread(lambda: store("ALICE", settings, [bad, good]))
    assert int(statuses[0].Status) == 0xC000
    assert "several values" in str(statuses[0].ErrorComment)
    assert int(statuses[1].Status) == 0x0000
    assert (
        not list((settings.storage_dir / ".staging").glob("*"))
        if (settings.storage_dir / ".staging").exists()
        else True
    )


async def test_a_peer_sees_only_its_users_studies(app: FastAPI, settings: Settings) -> None:
    alice, bob = tiny("ALICE1"), tiny("BOB1")
    await in_thread(lambda: store("ALICE", settings, [alice]))
    await in_thread(lambda: store("BOB", settings, [bob]))
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.PatientName = "*"
    identifier.PatientID = ""
    identifier.StudyInstanceUID = ""
    answers = await in_thread(lambda: find("ALICE", settings, identifier, StudyRootQueryRetrieveInformationModelFind))
    pending = [answer for status, answer in answers if status == 0xFF00]
    assert [str(a.PatientID) for a in pending if a is not None] == ["ALICE1"]
    assert answers[-1][0] == 0x0000


async def test_find_levels_wildcards_ranges_and_uid_lists(app: FastAPI, settings: Settings) -> None:
    study = generate_uid()
    first, second, other = tiny("WILD1", study), tiny("WILD1", study), tiny("OTHER")
    first.StudyDate = second.StudyDate = "20200115"
    other.StudyDate = "20210101"
    await in_thread(lambda: store("ALICE", settings, [first, second, other]))

    def ask(level: str, model: Any = StudyRootQueryRetrieveInformationModelFind, **keys: str) -> list[Dataset]:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = level
        for keyword, value in keys.items():
            setattr(identifier, keyword, value)
        answers = find("ALICE", settings, identifier, model)
        assert answers[-1][0] == 0x0000, answers[-1]
        return [a for status, a in answers if status == 0xFF00 and a is not None]

    patients = await in_thread(
        lambda: ask("PATIENT", PatientRootQueryRetrieveInformationModelFind, PatientName="wild*", PatientID="")
    )
    assert [str(p.PatientID) for p in patients] == ["WILD1"]
    studies = await in_thread(lambda: ask("STUDY", StudyDate="20200101-20201231", StudyInstanceUID=""))
    assert [str(s.StudyInstanceUID) for s in studies] == [study]
    series = await in_thread(lambda: ask("SERIES", StudyInstanceUID=study, SeriesInstanceUID="", Modality="O?"))
    assert len(series) == 2
    uids = f"{first.SOPInstanceUID}\\{other.SOPInstanceUID}"
    images = await in_thread(lambda: ask("IMAGE", SOPInstanceUID=uids, PatientID="WILD?"))
    assert [str(i.SOPInstanceUID) for i in images] == [str(first.SOPInstanceUID)]


async def test_a_bad_query_level_fails_without_ending_the_association(app: FastAPI, settings: Settings) -> None:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "PATIENT"  # not offered by Study Root
    answers = await in_thread(lambda: find("ALICE", settings, identifier, StudyRootQueryRetrieveInformationModelFind))
    assert answers[-1][0] == 0xA900


async def test_get_a_study_only_when_visible(app: FastAPI, settings: Settings) -> None:
    study = generate_uid()
    sent = [tiny("GET1", study), tiny("GET1", study)]
    await in_thread(lambda: store("ALICE", settings, sent))
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study

    received, last = await in_thread(lambda: get("ALICE", settings, identifier))
    assert sorted(received) == sorted(str(ds.SOPInstanceUID) for ds in sent) and last == 0x0000
    received, last = await in_thread(lambda: get("BOB", settings, identifier))  # bob does not see alice's study
    assert received == [] and last == 0x0000
    identifier.QueryRetrieveLevel = "PATIENT"  # not offered by Study Root
    received, last = await in_thread(lambda: get("ALICE", settings, identifier))
    assert received == [] and last == 0xA900


async def test_a_silent_peer_is_released_after_the_timeout(app: FastAPI, settings: Settings) -> None:
    assert settings.dimse_port is not None
    port = settings.dimse_port

    def silent() -> float:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            start = time.monotonic()
            assert sock.recv(1) == b""  # the listener closed the connection
            return time.monotonic() - start

    assert await in_thread(silent) < 5  # LIGHTBOX_DIMSE_ACSE_TIMEOUT is 1 s here

    def idle() -> bool:
        assoc = associate(client("ALICE"), settings)
        assert assoc.is_established
        deadline = time.monotonic() + 8
        while assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.1)
        return assoc.is_aborted

    assert await in_thread(idle)  # LIGHTBOX_DIMSE_IDLE_TIMEOUT is 2 s here


async def test_eight_associations_of_fifty_files_store_all_four_hundred(app: FastAPI, settings: Settings) -> None:
    import anyio

    batches = [[tiny(f"LOAD{n}") for _ in range(50)] for n in range(8)]
    results: list[list[int]] = []

    async def send(batch: list[Dataset]) -> None:
        statuses = await in_thread(lambda: store("ALICE", settings, batch))
        results.append([int(s.Status) for s in statuses])

    async with anyio.create_task_group() as group:
        for batch in batches:
            group.start_soon(send, batch)
    assert sorted(len(r) for r in results) == [50] * 8
    assert all(status == 0x0000 for r in results for status in r)
    counts = await app.state.index.counts()
    assert counts["instances"] == 400


async def test_readiness_includes_the_listener(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as http:
        response = await http.get("/readyz")
    assert response.status_code == 200, response.text
    assert "dimse" in app.state.readiness_checks


def _list_all() -> Any:
    from app.index.base import ListQuery

    return ListQuery(limit=1000)


async def test_associations_beyond_the_limit_are_rejected(app: FastAPI, settings: Settings) -> None:
    def beyond() -> tuple[bool, Any]:
        held = [associate(client("ALICE"), settings) for _ in range(settings.dimse_max_associations)]
        try:
            assert all(assoc.is_established for assoc in held)
            extra = associate(client("ALICE"), settings)
            return extra.is_rejected, extra.acceptor.primitive
        finally:
            for assoc in held:
                assoc.release()

    rejected, primitive = await in_thread(beyond)
    assert rejected
    assert (primitive.result, primitive.result_source, primitive.diagnostic) == (0x02, 0x03, 0x02)  # local limit
