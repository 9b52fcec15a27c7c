"""WADO-RS retrieve as ``application/zip`` (PS3.18 §8.7.3, Supplement 211) over the real app: the
study's stored files byte for byte, nothing else, 404 for what the caller may not see, one audit record."""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydicom import dcmread
from pydicom.uid import generate_uid

from app.api.deps import get_principal
from app.auth.principals import Principal
from tests.api.test_audit import audit_of
from tests.conftest import sample, upload

pytestmark = pytest.mark.anyio

ROOT = "/dicom-web"
CT = dcmread(sample("CT_small.dcm"), stop_before_pixels=True)


def second_series(tmp_path: Path) -> Path:
    """Another instance of the CT study, in a series of its own."""
    ds = dcmread(sample("CT_small.dcm"))
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    path = tmp_path / f"{uuid.uuid4().hex}.dcm"
    ds.save_as(path)
    return path


async def test_a_study_downloads_as_a_zip_of_its_stored_files(client: httpx.AsyncClient, tmp_path: Path) -> None:
    other = second_series(tmp_path)
    for path in (sample("CT_small.dcm"), other, sample("MR_small.dcm"), sample("JPEG2000.dcm")):
        await upload(client, path)
    extra = dcmread(other, stop_before_pixels=True)

    answer = await client.get(f"{ROOT}/studies/{CT.StudyInstanceUID}", headers={"Accept": "application/zip"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-disposition"] == f'attachment; filename="{CT.StudyInstanceUID}.zip"'
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.testzip() is None
        members = {info.filename: archive.read(info) for info in archive.infolist()}
        kinds = {info.filename: info.compress_type for info in archive.infolist()}
    assert members == {
        f"{CT.SeriesInstanceUID}/{CT.SOPInstanceUID}.dcm": sample("CT_small.dcm").read_bytes(),
        f"{extra.SeriesInstanceUID}/{extra.SOPInstanceUID}.dcm": other.read_bytes(),
    }
    assert set(kinds.values()) == {zipfile.ZIP_DEFLATED}  # native pixel data is deflated

    # the accept query parameter (PS3.18 8.3.3.1) serves a plain link; a series; compressed data is stored
    series = f"{ROOT}/studies/{CT.StudyInstanceUID}/series/{extra.SeriesInstanceUID}"
    one = await client.get(series, params={"accept": "application/zip"})
    with zipfile.ZipFile(io.BytesIO(one.content)) as archive:
        assert archive.namelist() == [f"{extra.SeriesInstanceUID}/{extra.SOPInstanceUID}.dcm"]
    j2k = dcmread(sample("JPEG2000.dcm"), stop_before_pixels=True)
    stored = await client.get(f"{ROOT}/studies/{j2k.StudyInstanceUID}", params={"accept": "application/zip"})
    with zipfile.ZipFile(io.BytesIO(stored.content)) as archive:
        (info,) = archive.infolist()
        assert info.compress_type == zipfile.ZIP_STORED
        assert archive.read(info) == sample("JPEG2000.dcm").read_bytes()


async def test_negotiation_keeps_multipart_the_default(client: httpx.AsyncClient) -> None:
    await upload(client, sample("CT_small.dcm"))
    study = f"{ROOT}/studies/{CT.StudyInstanceUID}"
    for accept in ("*/*", 'multipart/related; type="application/dicom"', "application/zip; q=0.5, */*"):
        answer = await client.get(study, headers={"Accept": accept})
        assert answer.headers["content-type"].startswith("multipart/related"), accept
    preferred = await client.get(
        study, headers={"Accept": 'application/zip, multipart/related; type="application/dicom"'}
    )
    assert preferred.headers["content-type"] == "application/zip"
    as_stored = await client.get(study, headers={"Accept": "application/zip; transfer-syntax=*"})
    assert as_stored.status_code == 200
    other_syntax = await client.get(
        study, headers={"Accept": "application/zip; transfer-syntax=1.2.840.10008.1.2.4.50"}
    )
    assert other_syntax.status_code == 406
    assert "as stored" in other_syntax.json()["error"]


async def test_an_invisible_or_unknown_study_is_404_and_each_download_is_one_record(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await upload(client, sample("CT_small.dcm"))
    study = f"{ROOT}/studies/{CT.StudyInstanceUID}"
    assert (await client.get(study, headers={"Accept": "application/zip"})).status_code == 200
    assert (
        await client.get(f"{ROOT}/studies/{generate_uid()}", params={"accept": "application/zip"})
    ).status_code == 404

    async def stranger() -> Principal:
        return Principal("stranger")

    app.dependency_overrides[get_principal] = stranger
    try:
        hidden = await client.get(study, headers={"Accept": "application/zip"})
    finally:
        app.dependency_overrides.clear()
    assert hidden.status_code == 404
    assert str(CT.PatientName) not in hidden.text

    downloads = [r for r in await audit_of(client) if r["action"] == "download"]
    zipped = {"dicomweb": "retrieve", "of": "study", "as": "zip"}
    assert [(r["actor"], r["outcome"], r["reason"], r["study_instance_uid"], r["detail"]) for r in downloads] == [
        ("local", "success", None, CT.StudyInstanceUID, zipped),
        ("local", "failure", "file_not_found", None, zipped),
        ("stranger", "failure", "file_not_found", None, zipped),
    ]
