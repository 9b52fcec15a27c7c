"""C-MOVE (PS3.4 C.4.2) to a destination from LIGHTBOX_DIMSE_DESTINATIONS: a real pynetdicom Storage SCP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi import FastAPI
from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove  # type: ignore[attr-defined]

from app.config import Settings
from tests.conftest import sample
from tests.dimse.test_listener import associate, client, in_thread, running, store, with_auth
from tests.e2e.server import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def destination() -> Iterator[tuple[int, list[Dataset]]]:
    """A Storage SCP accepting only the uncompressed syntaxes (pynetdicom's default for its contexts)."""
    received: list[Dataset] = []

    def on_store(event: Any) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        received.append(dataset)
        return 0x0000

    ae = AE(ae_title="DEST")
    ae.supported_contexts = StoragePresentationContexts
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert server is not None
    try:
        yield port, received
    finally:
        server.shutdown()


@pytest.fixture
def settings(tmp_path: Path, destination: tuple[int, list[Dataset]]) -> Settings:
    return with_auth(
        storage_dir=tmp_path / "storage",
        dimse_port=free_port(),
        dimse_peers="ALICE@127.0.0.1:alice",
        dimse_destinations=f"DEST@127.0.0.1:{destination[0]}",
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(settings) as application:
        yield application


def move(settings: Settings, study: str, to: str, level: str = "STUDY") -> int:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    identifier.StudyInstanceUID = study
    assoc = associate(client("ALICE", [StudyRootQueryRetrieveInformationModelMove]), settings)
    assert assoc.is_established
    last = -1
    for status, _ in assoc.send_c_move(identifier, to, StudyRootQueryRetrieveInformationModelMove):
        last = int(status.Status)
    assoc.release()
    return last


async def test_move_a_compressed_study_to_a_destination_that_takes_only_uncompressed(
    app: FastAPI, settings: Settings, destination: tuple[int, list[Dataset]]
) -> None:
    sent = pydicom.dcmread(sample("MR_small_RLE.dcm"))
    assert [int(s.Status) for s in await in_thread(lambda: store("ALICE", settings, [sent]))] == [0x0000]
    assert await in_thread(lambda: move(settings, str(sent.StudyInstanceUID), "DEST")) == 0x0000
    received = destination[1]
    assert [str(ds.SOPInstanceUID) for ds in received] == [str(sent.SOPInstanceUID)]
    assert not received[0].file_meta.TransferSyntaxUID.is_compressed
    sent.decompress(generate_instance_uid=False)
    assert received[0].PixelData == sent.PixelData


async def test_an_unknown_move_destination_is_refused(app: FastAPI, settings: Settings) -> None:
    assert await in_thread(lambda: move(settings, "1.2.3", "NOWHERE")) == 0xA801


async def test_a_bad_identifier_fails_the_move(app: FastAPI, settings: Settings) -> None:
    assert await in_thread(lambda: move(settings, "1.2.3", "DEST", level="PATIENT")) == 0xA900
