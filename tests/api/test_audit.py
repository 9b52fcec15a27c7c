"""The audit trail over the real app: every access recorded once, with its outcome; GET /admin/audit."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydicom import dcmread
from sqlalchemy import text

from app.api.deps import get_principal
from app.auth.principals import ActorType, Principal
from app.config import Settings
from app.logging import JsonFormatter
from app.main import create_app
from tests.conftest import sample, upload

pytestmark = pytest.mark.anyio

CT_STUDY = str(dcmread(sample("CT_small.dcm"), stop_before_pixels=True).StudyInstanceUID)
MR_STUDY = str(dcmread(sample("MR_small.dcm"), stop_before_pixels=True).StudyInstanceUID)


async def audit_of(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every record but the audit log's own reads, oldest first."""
    response = await client.get("/admin/audit", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data", "total"}
    return [r for r in reversed(body["data"]) if r["action"] != "audit_read"]


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as http:
            yield application, http


async def test_every_access_is_recorded_once_with_its_outcome(app: FastAPI, client: httpx.AsyncClient) -> None:
    ct = sample("CT_small.dcm").read_bytes()
    steps: list[tuple[str, Any]] = []

    async def call(method: str, url: str, expected: int, **kwargs: Any) -> httpx.Response:
        request_id = f"step-{len(steps)}"
        headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
        response = await client.request(method, url, headers=headers, **kwargs)
        assert response.status_code == expected, (url, response.text)
        steps.append((request_id, response))
        return response

    name = (await call("POST", "/upload", 201, files={"file": ("CT_small.dcm", ct)})).json()["name"]
    await call("POST", "/upload", 200, files={"file": ("again.dcm", ct)})
    await call("POST", "/upload", 400, files={"file": ("notes.txt", b"not dicom")})
    hits = app.state.instances.answer_cache.hits
    await call("GET", f"/dicomFile/{name}", 200, params={"tag": "InstitutionName"})
    await call("GET", f"/dicomFile/{name}", 200, params={"tag": "InstitutionName"})
    # the second was the lean cached path (a shared PostgreSQL index asks the database every time)
    assert app.state.instances.answer_cache.hits == hits + (0 if app.state.index.shared else 1)
    await call("GET", f"/dicomFile/{name}", 404, params={"tag": "(0018,1030)"})
    await call("GET", f"/dicomFile/{name}", 400, params={"tag": "zz"})
    await call("GET", "/dicomFile/nope.dcm", 404, params={"tag": "Rows"})
    await call("GET", f"/dicomFile/{name}?metadata", 200)
    etag = (await call("GET", f"/dicomFile/{name}?png", 200)).headers["etag"]
    await call("GET", f"/dicomFile/{name}?png", 304, headers={"If-None-Match": etag})
    await call("GET", f"/dicomFile/{name}?download", 200)
    await call("GET", "/dicomFile", 200, params={"PatientName": "CompressedSamples*"})
    await call("DELETE", f"/dicomFile/{name}", 204)
    await call("DELETE", f"/dicomFile/{name}", 404)
    await call("GET", f"/dicomFile/{name}?png", 404)

    records = await audit_of(client)
    by_request = {r["request_id"]: r for r in records}
    assert len(records) == len(by_request) == len(steps)  # one record per request, none twice
    expected = [
        ("upload", "success", None, name, CT_STUDY),
        ("upload", "success", None, name, CT_STUDY),
        ("upload", "failure", "invalid_dicom", None, None),
        ("tag", "success", None, name, CT_STUDY),
        ("tag", "success", None, name, CT_STUDY),
        ("tag", "failure", "element_not_found", name, None),
        ("tag", "failure", "invalid_request", name, None),
        ("tag", "failure", "file_not_found", "nope.dcm", None),
        ("metadata", "success", None, name, CT_STUDY),
        ("render", "success", None, name, CT_STUDY),
        ("render", "success", None, name, CT_STUDY),
        ("download", "success", None, name, CT_STUDY),
        ("list", "success", None, None, None),
        ("delete", "success", None, name, CT_STUDY),
        ("delete", "failure", "file_not_found", name, None),
        ("render", "failure", "file_not_found", name, None),
    ]
    seen = [by_request[request_id] for request_id, _ in steps]
    assert [(r["action"], r["outcome"], r["reason"], r["name"], r["study_instance_uid"]) for r in seen] == expected
    assert all(r["actor"] == "local" and r["actor_type"] == ActorType.USER for r in seen)
    assert all(r["client"] == "127.0.0.1" for r in seen)
    assert seen[0]["detail"] == {"file": "CT_small.dcm", "created": True}
    assert seen[1]["detail"] == {"file": "again.dcm", "created": False}
    assert seen[3]["detail"] == seen[4]["detail"] == {"tag": "(0008,0080)"}
    assert seen[10]["detail"] == {"frame": 1, "format": "png", "not_modified": True}
    assert seen[12]["detail"] == {"PatientName": "CompressedSamples*", "limit": 100, "offset": 0}
    assert [r["time"] for r in seen] == sorted(r["time"] for r in seen)


async def test_each_file_of_a_bulk_upload_is_recorded(client: httpx.AsyncClient) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("study/mr.dcm", sample("MR_small.dcm").read_bytes())
        archive.writestr("study/README.txt", b"hello")
    files = [("file", ("ct.dcm", sample("CT_small.dcm").read_bytes())), ("file", ("s.zip", buffer.getvalue()))]
    response = await client.post("/upload", files=files)
    assert response.status_code == 202
    records = await audit_of(client, action="upload")
    assert [(r["detail"]["file"], r["outcome"], r["study_instance_uid"]) for r in records] == [
        ("ct.dcm", "success", CT_STUDY),
        ("study/mr.dcm", "success", MR_STUDY),
        ("study/README.txt", "failure", None),
    ]


async def test_filters_and_paging(client: httpx.AsyncClient) -> None:
    ct = await upload(client, sample("CT_small.dcm"))
    mr = await upload(client, sample("MR_small.dcm"))
    for name in (ct, mr, ct):
        assert (await client.get(f"/dicomFile/{name}", params={"tag": "Rows"})).status_code == 200
    everything = await audit_of(client)
    assert len(everything) == 5
    assert [r["name"] for r in await audit_of(client, action="upload")] == [ct, mr]
    assert len(await audit_of(client, study_instance_uid=CT_STUDY)) == 3
    assert len(await audit_of(client, study_instance_uid=MR_STUDY, action="tag")) == 1
    assert len(await audit_of(client, actor="local")) == 5
    assert await audit_of(client, actor="somebody-else") == []
    third = everything[2]["time"]
    assert [r["time"] for r in await audit_of(client, since=third)] == [r["time"] for r in everything[2:]]
    assert [r["time"] for r in await audit_of(client, until=third)] == [r["time"] for r in everything[:2]]
    page = (await client.get("/admin/audit", params={"action": "tag", "limit": 1, "offset": 1})).json()
    assert page["total"] == 3 and len(page["data"]) == 1 and page["data"][0]["name"] == mr  # newest first
    for bad in ({"action": "peek"}, {"since": "yesterday"}, {"limit": 0}, {"limit": 1001}):
        response = await client.get("/admin/audit", params=bad)
        assert response.status_code == 400 and "error" in response.json()


async def test_only_an_administrator_reads_the_audit_log(app: FastAPI, client: httpx.AsyncClient) -> None:
    async def alice() -> Principal:
        return Principal("alice", actor_type=ActorType.API_KEY)

    app.dependency_overrides[get_principal] = alice
    try:
        refused = await client.get("/admin/audit", headers={"X-Request-ID": "peek-1"})
    finally:
        app.dependency_overrides.clear()
    assert refused.status_code == 403
    assert refused.json() == {"error": "this needs an administrator"}
    reads = (await client.get("/admin/audit", params={"action": "audit_read"})).json()["data"]
    denied = [r for r in reads if r["request_id"] == "peek-1"]
    assert len(denied) == 1
    assert (denied[0]["actor"], denied[0]["actor_type"], denied[0]["outcome"], denied[0]["reason"]) == (
        "alice",
        "api_key",
        "denied",
        "forbidden",
    )


async def test_records_survive_a_restart_and_a_clean_stop_loses_none(tmp_path: Any) -> None:
    # an interval far longer than the test: nothing is written before the stop, everything at it
    settings = Settings(storage_dir=tmp_path / "storage", audit_flush_seconds=10)
    async with running(settings) as (_app, http):
        name = await upload(http, sample("CT_small.dcm"))
        for _ in range(3):
            assert (await http.get(f"/dicomFile/{name}", params={"tag": "Rows"})).status_code == 200
    async with running(settings) as (_app, http):
        records = await audit_of(http)
    assert [(r["action"], r["name"]) for r in records] == [("upload", name)] + [("tag", name)] * 3


async def test_access_is_refused_when_the_trail_cannot_take_a_record(tmp_path: Any) -> None:
    settings = Settings(storage_dir=tmp_path / "storage", audit_flush_seconds=10, audit_queue_records=1)
    async with running(settings) as (app, http):
        name = await upload(http, sample("CT_small.dcm"))  # its record fills the queue
        refused = await http.get(f"/dicomFile/{name}", params={"tag": "Rows"})
        assert refused.status_code == 503 and "audit" in refused.json()["error"]
        await app.state.audit.flush()
        assert (await http.get(f"/dicomFile/{name}", params={"tag": "Rows"})).status_code == 200
        await app.state.audit.flush()
        assert (await http.get(f"/dicomFile/{name}", params={"tag": "Rows"})).status_code == 200  # cached
        refused = await http.get(f"/dicomFile/{name}", params={"tag": "Rows"})  # the lean path defers, then 503
        assert refused.status_code == 503


async def test_no_credential_reaches_a_record_and_the_log_copy_holds_no_patient_data(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = ("lbx_7_s3cr3tkeyvalue", "sharetoken-9f8e7d", "hunter2-password", "cookie-c0ffee")
    headers = {"Authorization": f"Bearer {secrets[0]}", "Cookie": f"lightbox_session={secrets[3]}"}
    with caplog.at_level(logging.INFO, logger="lightbox.audit"):
        name = (
            await client.post(
                "/upload",
                files={"file": ("DOE_JOHN.dcm", sample("CT_small.dcm").read_bytes())},
                data={"password": secrets[2]},
                headers=headers,
            )
        ).json()["name"]
        for params in ({"tag": "PatientName", "token": secrets[1]}, {"png": "", "token": secrets[1]}):
            assert (await client.get(f"/dicomFile/{name}", params=params, headers=headers)).status_code == 200
        listed = await client.get("/dicomFile", params={"PatientName": "DOE*", "token": secrets[1]}, headers=headers)
        assert listed.status_code == 200
        await app.state.audit.flush()
    async with app.state.index.engine.connect() as conn:
        dump = json.dumps([list(row) for row in (await conn.execute(text("SELECT * FROM audit_records"))).all()])
    assert "DOE_JOHN.dcm" in dump and "DOE*" in dump  # what the caller typed is kept, for administrators
    assert not [secret for secret in secrets if secret in dump]
    lines = [JsonFormatter().format(record) for record in caplog.records if record.name == "lightbox.audit"]
    assert len(lines) == 4
    entries = [json.loads(line) for line in lines]
    assert [(e["audit"], e["action"], e["outcome"]) for e in entries] == [
        (True, "upload", "success"),
        (True, "tag", "success"),
        (True, "render", "success"),
        (True, "list", "success"),
    ]
    assert all(e["actor"] == "local" and e["actor_type"] == "user" for e in entries)
    header = dcmread(sample("CT_small.dcm"), stop_before_pixels=True)
    for private in (name, "DOE", CT_STUDY, str(header.PatientName), str(header.PatientID), *secrets):
        assert not [line for line in lines if private in line], private


async def test_what_another_principal_cannot_see_is_recorded_as_not_found(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    name = await upload(client, sample("CT_small.dcm"))

    async def stranger() -> Principal:
        return Principal("stranger")

    app.dependency_overrides[get_principal] = stranger
    try:
        for query in ("tag=Rows", "metadata", "png", "download"):
            assert (await client.get(f"/dicomFile/{name}?{query}")).status_code == 404
        assert (await client.delete(f"/dicomFile/{name}")).status_code == 404
    finally:
        app.dependency_overrides.clear()
    records = [r for r in await audit_of(client) if r["actor"] == "stranger"]
    assert [(r["action"], r["outcome"], r["reason"]) for r in records] == [
        (action, "failure", "file_not_found") for action in ("tag", "metadata", "render", "download", "delete")
    ]
    assert all(r["study_instance_uid"] is None for r in records)  # nothing of the file is revealed
