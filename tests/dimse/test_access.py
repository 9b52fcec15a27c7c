"""Who a DICOM peer is and what it sees, with LIGHTBOX_AUTH_REQUIRED=true: the users service names the
principal, the access policy (grants included) decides what C-FIND and C-GET see, as for QIDO-RS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from app.auth.principals import LOCAL_ADMIN
from app.config import Settings
from app.errors import NotAuthenticated
from app.services.grants import Access
from tests.dimse.test_listener import (
    PASSWORD,
    associate,
    client,
    find,
    get,
    in_thread,
    running,
    store,
    tiny,
    with_auth,
)
from tests.e2e.server import free_port

pytestmark = pytest.mark.anyio
PEERS = "ALICE@127.0.0.1:alice,BOB@127.0.0.1:bob,CAROL@127.0.0.1:carol"  # carol has no account


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return with_auth(storage_dir=tmp_path / "storage", dimse_port=free_port(), dimse_peers=PEERS)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(settings) as application:
        yield application


def query(level: str, **keys: str) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    return identifier


def found(ae_title: str, settings: Settings, identifier: Dataset, model: object) -> list[str]:
    """The Study Instance UIDs (or Patient IDs) of the pending answers; the final status must be success."""
    answers = find(ae_title, settings, identifier, model)
    assert answers[-1][0] == 0x0000
    key = "PatientID" if identifier.QueryRetrieveLevel == "PATIENT" else "StudyInstanceUID"
    return [str(answer.get(key)) for status, answer in answers if status == 0xFF00 and answer is not None]


async def qido_studies(app: FastAPI, user: str, study: str) -> int:
    """How many studies QIDO-RS shows ``user`` (HTTP Basic, the same credentials as any client)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test", auth=(user, PASSWORD)) as http:
        response = await http.get("/dicom-web/studies", params={"StudyInstanceUID": study})
    assert response.status_code in (200, 204), response.text
    return len(response.json()) if response.status_code == 200 else 0


async def test_a_grant_shows_the_study_at_every_level_as_qido_does(app: FastAPI, settings: Settings) -> None:
    study = generate_uid()
    sent = [tiny("GRANTED", study), tiny("GRANTED", study)]
    await in_thread(lambda: store("ALICE", settings, sent))
    levels = [
        (query("STUDY", StudyInstanceUID=study), StudyRootQueryRetrieveInformationModelFind),
        (query("SERIES", StudyInstanceUID=study, SeriesInstanceUID=""), StudyRootQueryRetrieveInformationModelFind),
        (query("IMAGE", StudyInstanceUID=study, SOPInstanceUID=""), StudyRootQueryRetrieveInformationModelFind),
        (query("PATIENT", PatientID="GRANTED"), PatientRootQueryRetrieveInformationModelFind),
    ]

    def counts() -> list[int]:
        return [len(found("BOB", settings, identifier, model)) for identifier, model in levels]

    assert await in_thread(counts) == [0, 0, 0, 0]
    assert await qido_studies(app, "bob", study) == 0
    assert (await in_thread(lambda: get("BOB", settings, query("STUDY", StudyInstanceUID=study))))[0] == []

    alice = await app.state.users.acting_as("alice")
    await app.state.grants.create(alice, study, "bob", Access.READ)

    assert await in_thread(counts) == [1, 2, 2, 1]  # one study, its two series, two instances, one patient
    assert await qido_studies(app, "bob", study) == 1
    received, last = await in_thread(lambda: get("BOB", settings, query("STUDY", StudyInstanceUID=study)))
    assert sorted(received) == sorted(str(ds.SOPInstanceUID) for ds in sent) and last == 0x0000


async def test_a_peer_whose_user_does_not_exist_is_rejected(app: FastAPI, settings: Settings) -> None:
    def attempt() -> tuple[bool, bool]:
        assoc = associate(client("CAROL"), settings)
        rejected = assoc.is_rejected
        if assoc.is_established:
            assoc.release()
        return assoc.is_established, rejected

    assert await in_thread(attempt) == (False, True)
    with pytest.raises(NotAuthenticated):
        await app.state.users.acting_as("carol")


async def test_a_user_disabled_during_an_association_is_refused_not_authorised(
    app: FastAPI, settings: Settings
) -> None:
    ae = client("ALICE", [StudyRootQueryRetrieveInformationModelFind])
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.7")  # Secondary Capture Image Storage
    assoc = await in_thread(lambda: associate(ae, settings))
    assert assoc.is_established
    try:
        await app.state.users.change(LOCAL_ADMIN, "alice", disabled=True)
        answers = await in_thread(
            lambda: list(
                assoc.send_c_find(query("STUDY", StudyInstanceUID=""), StudyRootQueryRetrieveInformationModelFind)
            )
        )
        assert int(answers[-1][0].Status) == 0x0124  # Refused: Not Authorized (PS3.7 C.4.3)
        stored = await in_thread(lambda: assoc.send_c_store(tiny("LATE")))
        assert int(stored.Status) == 0x0124
    finally:
        await in_thread(assoc.release)
    assert (await app.state.index.counts())["instances"] == 0


async def test_single_user_mode_peers_act_as_the_local_administrator(tmp_path: Path) -> None:
    settings = Settings(storage_dir=tmp_path / "storage", dimse_port=free_port(), dimse_peers=PEERS)
    async with running(settings) as app:
        assert await app.state.users.acting_as("carol") == LOCAL_ADMIN  # any user named: no accounts here
        await in_thread(lambda: store("CAROL", settings, [tiny("SINGLE")]))
        patient = query("PATIENT", PatientID="SINGLE")
        answers = await in_thread(
            lambda: found("ALICE", settings, patient, PatientRootQueryRetrieveInformationModelFind)
        )
        assert answers == ["SINGLE"]  # alice sees what carol stored: both are the local administrator
