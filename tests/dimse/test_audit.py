"""A storescu + findscu + getscu session leaves its audit trail (rule 9), read back through GET /admin/audit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

from app.config import Settings
from tests.dimse.test_listener import PASSWORD, find, get, in_thread, running, store, tiny, with_auth
from tests.e2e.server import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return with_auth(storage_dir=tmp_path / "storage", dimse_port=free_port(), dimse_peers="ALICE@127.0.0.1:alice")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(settings) as application:
        yield application


async def audit_of(app: FastAPI, actor: str) -> list[dict[str, Any]]:
    """The actor's records, oldest first, as an administrator reads them over HTTP."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://lightbox.test", auth=("admin", PASSWORD)
    ) as http:
        response = await http.get("/admin/audit", params={"actor": actor, "limit": 100})
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["data"]
    return records[::-1]


def detail(record: dict[str, Any]) -> dict[str, Any]:
    text = record.get("detail")
    if isinstance(text, dict):
        return text
    return json.loads(text) if text else {}


async def test_store_find_get_session_leaves_one_record_per_file_query_and_instance_sent(
    app: FastAPI, settings: Settings
) -> None:
    study = generate_uid()
    sent = [tiny("AUDITED", study), tiny("AUDITED", study)]
    bad = tiny("AUDITED", study)
    bad.SeriesInstanceUID = ["1.2.3", "1.2.4"]  # refused by ingest
    statuses = await in_thread(lambda: store("ALICE", settings, [*sent, bad, sent[0]]))  # the last: a re-send
    assert [int(s.Status) for s in statuses] == [0x0000, 0x0000, 0xC000, 0x0000]
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study
    identifier.PatientName = ""
    answers = await in_thread(lambda: find("ALICE", settings, identifier, StudyRootQueryRetrieveInformationModelFind))
    assert [status for status, _ in answers] == [0xFF00, 0x0000]
    retrieve = Dataset()
    retrieve.QueryRetrieveLevel = "STUDY"
    retrieve.StudyInstanceUID = study
    received, last = await in_thread(lambda: get("ALICE", settings, retrieve))
    assert len(received) == 2 and last == 0x0000

    records = await audit_of(app, "alice")
    assert [(r["action"], r["outcome"]) for r in records] == [
        ("upload", "success"),
        ("upload", "success"),
        ("upload", "failure"),
        ("upload", "success"),
        ("list", "success"),
        ("download", "success"),
        ("download", "success"),
    ]
    uploads, query, downloads = records[:4], records[4], records[5:]
    assert [detail(r) for r in uploads] == [
        {"dimse": "C-STORE", "created": True},
        {"dimse": "C-STORE", "created": True},
        {"dimse": "C-STORE"},
        {"dimse": "C-STORE", "created": False},
    ]
    assert uploads[2]["reason"] == "invalid_dicom"
    assert uploads[0]["name"] != uploads[1]["name"] and uploads[3]["name"] == uploads[0]["name"]
    assert detail(query) == {"dimse": "C-FIND", "level": "STUDY", "StudyInstanceUID": study}
    assert query["study_instance_uid"] == study
    assert {r["name"] for r in downloads} == {uploads[0]["name"], uploads[1]["name"]}
    assert all(detail(r) == {"dimse": "C-GET"} and r["study_instance_uid"] == study for r in downloads)
    assert all(r["client"] == "127.0.0.1" and r["actor_type"] == "user" for r in records)
    assert len({r["request_id"] for r in records}) == len(records)  # each DIMSE request is one request


async def test_a_retrieve_of_nothing_visible_sends_nothing_and_is_one_failed_download(
    app: FastAPI, settings: Settings
) -> None:
    retrieve = Dataset()
    retrieve.QueryRetrieveLevel = "STUDY"
    retrieve.StudyInstanceUID = study = generate_uid()
    received, last = await in_thread(lambda: get("ALICE", settings, retrieve))
    assert received == [] and last == 0x0000
    records = await audit_of(app, "alice")
    assert [(r["action"], r["outcome"], r["reason"]) for r in records] == [("download", "failure", "file_not_found")]
    assert records[0]["study_instance_uid"] == study and detail(records[0]) == {"dimse": "C-GET"}
