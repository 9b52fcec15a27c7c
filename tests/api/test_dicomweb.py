"""DICOMweb details the real client does not exercise: STOW failures, QIDO matching, negotiation, errors."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlalchemy import event

from tests.conftest import sample

pytestmark = pytest.mark.anyio

ROOT = "/dicom-web"
CT = "CT_small.dcm"
MR = "MR_small.dcm"


def _body(parts: list[tuple[str, bytes]], boundary: str) -> bytes:
    chunks = [f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode() + data + b"\r\n" for kind, data in parts]
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


async def stow(
    client: httpx.AsyncClient, parts: list[tuple[str, bytes]], study: str | None = None, quoted: bool = True
) -> httpx.Response:
    boundary = uuid.uuid4().hex
    shown = f'"{boundary}"' if quoted else boundary
    url = f"{ROOT}/studies" + (f"/{study}" if study else "")
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={shown}'}
    return await client.post(url, content=_body(parts, boundary), headers=headers)


def dicom(name: str) -> tuple[str, bytes]:
    return "application/dicom", sample(name).read_bytes()


def changed(name: str, tmp_path: Path, **values: Any) -> bytes:
    ds = dcmread(sample(name))
    for key, value in values.items():
        setattr(ds, key, value)
    path = tmp_path / f"{uuid.uuid4().hex}.dcm"
    ds.save_as(path)
    return path.read_bytes()


def failure_reasons(answer: httpx.Response) -> list[int]:
    return [item["00081197"]["Value"][0] for item in answer.json().get("00081198", {}).get("Value", [])]


async def test_stow_stores_each_part_with_any_boundary_and_links_it(client: httpx.AsyncClient) -> None:
    answer = await stow(client, [dicom(CT), dicom(MR)], quoted=False)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/dicom+json"
    referenced = answer.json()["00081199"]["Value"]
    ct = dcmread(sample(CT))
    assert referenced[0]["00081155"]["Value"] == [ct.SOPInstanceUID]
    url = referenced[0]["00081190"]["Value"][0]
    assert url == (
        f"http://lightbox.test{ROOT}/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
        f"/instances/{ct.SOPInstanceUID}"
    )
    listed = (await client.get("/dicomFile")).json()
    assert listed["total"] == 2  # the same store as POST /upload


async def test_stow_reports_failures_with_the_standard_reasons(client: httpx.AsyncClient, tmp_path: Path) -> None:
    ct = dcmread(sample(CT))
    conflicting = changed(CT, tmp_path, PatientID="other")  # same SOP Instance UID, other bytes
    answer = await stow(
        client,
        [dicom(CT), ("application/dicom", conflicting), ("application/dicom", b"not dicom"), ("text/plain", b"x")],
    )
    assert answer.status_code == 202
    assert failure_reasons(answer) == [0x0111, 0xC000, 0xC000]
    mismatch = await stow(client, [dicom(MR)], study=str(ct.StudyInstanceUID))
    assert mismatch.status_code == 409
    assert failure_reasons(mismatch) == [0xA900]
    assert (await client.get("/dicomFile")).json()["total"] == 1  # nothing half-stored


async def test_stow_refuses_other_media_types(client: httpx.AsyncClient) -> None:
    wrong = await client.post(
        f"{ROOT}/studies", content=b"{}", headers={"Content-Type": 'multipart/related; type="application/dicom+json"'}
    )
    assert wrong.status_code == 415
    assert "error" in wrong.json()
    form = await client.post(f"{ROOT}/studies", files={"file": ("a.dcm", sample(CT).read_bytes())})
    assert form.status_code == 415


async def _store_samples(client: httpx.AsyncClient, tmp_path: Path) -> dict[str, Any]:
    a = changed(CT, tmp_path, StudyDate="20200105", StudyTime="101500", PatientName="Doe^Jane", AccessionNumber="A1")
    b = changed(MR, tmp_path, StudyDate="20210610", StudyTime="231000", PatientName="Roe^Rick", AccessionNumber="B2")
    answer = await stow(client, [("application/dicom", a), ("application/dicom", b)])
    assert answer.status_code == 200
    return {"ct": dcmread(sample(CT)), "mr": dcmread(sample(MR))}


async def search(client: httpx.AsyncClient, path: str, **params: str) -> list[dict[str, Any]]:
    answer = await client.get(f"{ROOT}{path}", params=params)
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()
    return results


def study_uids(results: list[dict[str, Any]]) -> list[str]:
    return [result["0020000D"]["Value"][0] for result in results]


async def test_qido_matching(client: httpx.AsyncClient, tmp_path: Path) -> None:
    found = await _store_samples(client, tmp_path)
    ct, mr = str(found["ct"].StudyInstanceUID), str(found["mr"].StudyInstanceUID)
    assert study_uids(await search(client, "/studies", StudyDate="20200101-20201231")) == [ct]
    assert study_uids(await search(client, "/studies", StudyDate="20210101-")) == [mr]
    assert study_uids(await search(client, "/studies", StudyTime="2300-2359")) == [mr]
    assert study_uids(await search(client, "/studies", StudyTime="1015")) == [ct]
    assert study_uids(await search(client, "/studies", PatientName="doe^jane")) == [ct]
    assert study_uids(await search(client, "/studies", PatientName="?oe*")) == [ct, mr]
    assert study_uids(await search(client, "/studies", AccessionNumber="B2")) == [mr]
    assert study_uids(await search(client, "/studies", StudyInstanceUID=f"{ct},{mr}")) == [ct, mr]
    assert study_uids(await search(client, "/studies", ModalitiesInStudy="MR")) == [mr]
    assert study_uids(await search(client, "/studies", **{"00080061": "CT,MR"})) == [ct, mr]
    assert study_uids(await search(client, "/studies", limit="1", offset="1")) == [mr]
    series = await search(client, "/series", Modality="MR", PatientName="Roe*")
    assert [s["0020000E"]["Value"][0] for s in series] == [found["mr"].SeriesInstanceUID]
    instances = await search(client, f"/studies/{ct}/instances", includefield="all")
    assert instances[0]["00280010"]["Value"] == [128]  # Rows, present with includefield=all
    assert "7FE00010" not in instances[0]  # never a bulk value


async def test_qido_required_study_attributes(client: httpx.AsyncClient, tmp_path: Path) -> None:
    await _store_samples(client, tmp_path)
    (result,) = await search(client, "/studies", AccessionNumber="A1")
    for keyword_tag in ("00080020", "00080030", "00080050", "00080061", "00100010", "00100020", "00201206", "00201208"):
        assert keyword_tag in result, keyword_tag
    assert result["00201208"]["Value"] == [1]


async def test_qido_errors_and_warnings(client: httpx.AsyncClient) -> None:
    unknown = await client.get(f"{ROOT}/studies", params={"NoSuchAttribute": "x"})
    assert unknown.status_code == 400
    assert "NoSuchAttribute" in unknown.json()["error"]
    assert (await client.get(f"{ROOT}/studies", params={"StudyDate": "2020"})).status_code == 400
    assert (await client.get(f"{ROOT}/studies", params={"limit": "0"})).status_code == 400
    fuzzy = await client.get(f"{ROOT}/studies", params={"fuzzymatching": "true"})
    assert fuzzy.status_code == 200
    assert "fuzzymatching" in fuzzy.headers["warning"]
    xml = await client.get(f"{ROOT}/studies", headers={"Accept": "application/dicom+xml"})
    assert xml.status_code == 406


async def test_wado_negotiation_and_errors(client: httpx.AsyncClient) -> None:
    await stow(client, [dicom(CT)])
    ct = dcmread(sample(CT))
    instance = f"{ROOT}/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}"
    jpeg_syntax = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    assert (await client.get(instance, headers={"Accept": jpeg_syntax})).status_code == 406
    as_stored = await client.get(
        instance, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    )
    assert b"Content-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n" in as_stored.content
    assert sample(CT).read_bytes() in as_stored.content  # byte for byte
    weighted = 'multipart/related; type="image/jls"; q=0.9, multipart/related; type="application/octet-stream"'
    frames = await client.get(f"{instance}/frames/1", headers={"Accept": weighted})
    assert frames.status_code == 200
    assert frames.headers["content-type"].startswith('multipart/related; type="application/octet-stream"')
    assert (await client.get(f"{instance}/frames/2")).status_code == 400  # one frame only
    jls_only = await client.get(f"{instance}/frames/1", headers={"Accept": 'multipart/related; type="image/jls"'})
    assert jls_only.status_code == 406
    any_syntax = "multipart/related; type=application/octet-stream; transfer-syntax=*"  # cornerstone's default
    frames = await client.get(f"{instance}/frames/1", headers={"Accept": any_syntax})
    assert b"Content-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1" in frames.content
    missing = await client.get(f"{ROOT}/studies/1.2.3/series/4.5/instances/6.7/metadata")
    assert missing.status_code == 404
    assert (await client.get(f"{ROOT}/studies/not-a-uid")).status_code == 404  # opaque UIDs are kept (ingest)
    assert (await client.get(f"{ROOT}/studies/a%5Cb")).status_code == 400  # a backslash never is a UID
    png = await client.get(f"{instance}/rendered", headers={"Accept": "image/png"}, params={"viewport": "64,64"})
    assert png.headers["content-type"] == "image/png"
    thumbnail = await client.get(f"{ROOT}/studies/{ct.StudyInstanceUID}/thumbnail")
    assert thumbnail.headers["content-type"] == "image/jpeg"
    frame_thumbnail = await client.get(f"{instance}/frames/1/thumbnail", headers={"Accept": "image/png"})
    assert frame_thumbnail.headers["content-type"] == "image/png"
    study = await client.get(f"{ROOT}/studies/{ct.StudyInstanceUID}/rendered", params={"quality": "50"})
    assert study.headers["content-type"].startswith('multipart/related; type="image/jpeg"')
    assert study.content.count(b"Content-Type: image/jpeg\r\n") == 1  # one instance in the study


async def test_metadata_of_an_unknown_study_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{ROOT}/studies/{generate_uid()}/metadata")).status_code == 404


async def test_metadata_is_cached_per_instance_with_each_requests_base_url(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await stow(client, [dicom(CT)])
    ct = dcmread(sample(CT))
    url = f"{ROOT}/studies/{ct.StudyInstanceUID}/metadata"
    first = (await client.get(url)).json()
    again = (await client.get(url, headers={"Host": "viewer.example:8443"})).json()
    cache = app.state.dicomweb.metadata_cache
    assert (cache.misses, cache.hits) == (1, 1)
    assert first[0]["7FE00010"]["BulkDataURI"].startswith("http://lightbox.test/dicom-web/studies/")
    assert again[0]["7FE00010"]["BulkDataURI"].startswith("http://viewer.example:8443/dicom-web/studies/")
    inline = {key for key, value in first[0].items() if "BulkDataURI" not in value}
    assert inline and {key: first[0][key] for key in inline} == {key: again[0][key] for key in inline}


async def test_large_json_answers_are_gzipped_when_the_client_takes_it(client: httpx.AsyncClient) -> None:
    await stow(client, [dicom("emri_small.dcm")])
    ds = dcmread(sample("emri_small.dcm"))
    url = f"{ROOT}/studies/{ds.StudyInstanceUID}/metadata"
    zipped = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.json()[0]["00080018"]["Value"] == [ds.SOPInstanceUID]  # httpx inflates it
    plain = await client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.json() == zipped.json()


async def test_private_bulk_data_uris_resolve(client: httpx.AsyncClient, tmp_path: Path) -> None:
    ds = dcmread(sample(CT))
    block = ds.private_block(0x0099, "LIGHTBOX TEST", create=True)
    block.add_new(0x01, "OB", bytes(range(256)) * 8)  # 2 KiB: kept in the file, named by a BulkDataURI
    path = tmp_path / "private.dcm"
    ds.save_as(path)
    await stow(client, [("application/dicom", path.read_bytes())])
    instance = f"{ROOT}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    (metadata,) = (await client.get(f"{instance}/metadata")).json()
    uri = metadata["00991001"]["BulkDataURI"]
    assert uri == f"http://lightbox.test{instance}/bulkdata/00991001"
    answer = await client.get(uri)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("multipart/related")
    assert bytes(range(256)) * 8 in answer.content
    single = await client.get(uri, headers={"Accept": "application/octet-stream"})
    assert single.headers["content-type"].startswith("application/octet-stream")
    assert single.content == bytes(range(256)) * 8


async def test_a_rendered_instance_asks_the_index_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Locating the instance by its UIDs (visibility applied) gives the audit record its study: no second query."""
    ct = dcmread(sample(CT))
    assert (await stow(client, [dicom(CT)])).status_code == 200
    url = f"{ROOT}/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}/rendered"
    assert (await client.get(url)).status_code == 200  # rendered and cached
    selects: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    engine = app.state.instances.index.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        again = await client.get(url)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert again.status_code == 200 and again.headers["content-type"] == "image/jpeg"
    assert len(selects) == 1, selects
    await app.state.audit.flush()
    records = (await client.get("/admin/audit", params={"action": "render", "limit": 1})).json()["data"]
    assert [(r["study_instance_uid"], r["outcome"]) for r in records] == [(ct.StudyInstanceUID, "success")]
