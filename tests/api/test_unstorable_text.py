"""Text no index can hold (NUL, U+0000: PostgreSQL's text refuses it, SQLite stores it) answers the same 4xx on
both deployments, never a 5xx, and never stalls the audit trail (one bad record would fail every batch)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydicom import dcmread

from app.auth.principals import LOCAL_ADMIN
from app.errors import InvalidRequest
from app.index.base import ListQuery
from tests.conftest import FOLDER, sample, upload

pytestmark = pytest.mark.anyio

TAG = {"tag": "(0008,0016)"}


async def test_a_name_with_nul_is_not_found(client: httpx.AsyncClient) -> None:
    name = await upload(client, sample("CT_small.dcm"))
    spoiled = name.replace("-", "-%00", 1)
    for method, url, params in [
        ("GET", "/dicomFile/%00", TAG),
        ("GET", f"/dicomFile/{spoiled}", TAG),
        ("GET", f"/dicomFile/{name}%00", {"png": ""}),
        ("GET", f"/dicomFile/{name}%00", {"metadata": ""}),
        ("GET", f"/dicomFile/{name}%00", {"download": ""}),
        ("DELETE", f"/dicomFile/{name}%00", None),
    ]:
        response = await client.request(method, url, params=params)
        assert response.status_code == 404, (method, url, params, response.text)
        assert "error" in response.json()
    assert (await client.get(f"/dicomFile/{name}", params=TAG)).status_code == 200


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/dicomFile", {"PatientName": "Doe\x00*"}),
        ("/dicomFile", {"PatientID": "\x00"}),
        ("/dicomFile", {"StudyInstanceUID": "1.2\x00"}),
        ("/dicom-web/studies", {"PatientName": "Doe\x00"}),
        ("/dicom-web/instances", {"AccessionNumber": "\x00"}),
        ("/admin/audit", {"actor": "local\x00"}),
        ("/admin/audit", {"study_instance_uid": "1.2\x00"}),
    ],
)
async def test_a_query_value_with_nul_is_refused(client: httpx.AsyncClient, url: str, params: dict[str, str]) -> None:
    response = await client.get(url, params=params)
    assert response.status_code == 400, response.text
    assert "error" in response.json()


async def test_a_user_name_with_nul_matches_no_user(client: httpx.AsyncClient) -> None:
    login = await client.post("/auth/login", json={"username": "admin\x00", "password": "x\x00"})
    assert login.status_code == 401, login.text
    for method in ("PATCH", "DELETE"):
        response = await client.request(method, "/admin/users/admin%00", json={"disabled": True})
        assert response.status_code == 404, (method, response.text)


async def test_the_audit_trail_records_nul_as_a_replacement_and_keeps_going(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/dicomFile/IM%00.dcm", params=TAG)).status_code == 404
    await app.state.audit.flush()  # all of it written now, or this raises
    name = await upload(client, sample("CT_small.dcm"))
    assert (await client.get(f"/dicomFile/{name}", params=TAG)).status_code == 200
    records = (await client.get("/admin/audit", params={"action": "tag"})).json()["data"]
    assert [(r["name"], r["outcome"]) for r in records] == [(name, "success"), ("IM\ufffd.dcm", "failure")]
    await app.state.audit.flush()  # the trail's own record of that read too


async def test_the_index_refuses_nul_it_cannot_store_as_bad_input(app: FastAPI, backend: str) -> None:
    """The net under the inputs' checks: a NUL that reaches PostgreSQL is the caller's (400), not the database
    failing (503); SQLite holds it, and it matches nothing stored."""
    query = ListQuery(patient_name="Doe\x00")
    if backend == FOLDER:
        assert (await app.state.index.query(LOCAL_ADMIN, query)).total == 0
        return
    with pytest.raises(InvalidRequest, match="NUL"):
        await app.state.index.query(LOCAL_ADMIN, query)


async def test_a_file_with_nul_inside_indexed_values_is_stored_and_found(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    dataset = dcmread(sample("CT_small.dcm"))
    dataset.PatientName = "DOE\x00JANE"
    dataset.StudyDescription = "HEAD\x00"  # trailing NUL: padding
    dataset.save_as(tmp_path / "nul.dcm")
    name = await upload(client, tmp_path / "nul.dcm")
    found = (await client.get("/dicomFile", params={"PatientName": "doe*"})).json()["data"]
    assert [(row["name"], row["patient-name"]) for row in found] == [(name, "DOE\ufffdJANE")]
    studies = (await client.get("/dicom-web/studies", params={"StudyDescription": "HEAD"})).json()
    assert len(studies) == 1


LONE = "\\ud800"  # JSON's escape of a lone surrogate: valid JSON, text no database driver can encode


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/auth/login", f'{{"username": "a{LONE}", "password": "p{LONE}"}}'),
        ("POST", "/admin/users", f'{{"username": "u{LONE}", "password": "a long passphrase {LONE}"}}'),
        ("PATCH", "/admin/users/admin", f'{{"password": "another long passphrase {LONE}"}}'),
        ("POST", "/auth/keys", f'{{"name": "k{LONE}"}}'),
        ("POST", "/grants", f'{{"study_instance_uid": "1.2{LONE}", "username": "b{LONE}"}}'),
        ("POST", "/shares", f'{{"study_instance_uid": "1.2{LONE}"}}'),
    ],
)
async def test_a_lone_surrogate_in_a_json_body_is_never_a_5xx(
    app: FastAPI, client: httpx.AsyncClient, method: str, url: str, body: str
) -> None:
    response = await client.request(method, url, content=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code < 500, response.text
    await app.state.audit.flush()  # whatever was recorded of it is written, or this raises
    assert (await client.get("/admin/audit")).status_code == 200
