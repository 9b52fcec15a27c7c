"""Links (RetrieveURL) built from LIGHTBOX_PUBLIC_URL when the service sits behind a proxy."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from app.config import Settings
from tests.api.test_dicomweb import CT, ROOT, dicom, stow
from tests.conftest import sample

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(storage_dir=tmp_path / "storage", public_url="https://pacs.example.org/lightbox")


async def test_links_use_the_public_url(client: httpx.AsyncClient) -> None:
    answer = await stow(client, [dicom(CT)])
    assert answer.json()["00081190"]["Value"][0].startswith("https://pacs.example.org/lightbox/dicom-web/studies/")
    (result,) = json.loads((await client.get(f"{ROOT}/studies")).content)
    assert result["00081190"]["Value"][0].startswith("https://pacs.example.org/lightbox/dicom-web/studies/")


def part_locations(answer: httpx.Response) -> list[str]:
    """The ``Content-Location`` of each part of a ``multipart/related`` answer (empty string when a part has none)."""
    boundary = answer.headers["content-type"].split("boundary=")[1].strip('"')
    found = []
    for part in answer.content.split(f"--{boundary}".encode())[1:-1]:
        head = part.split(b"\r\n\r\n", 1)[0].decode()
        lines = [
            line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith("content-location:")
        ]
        found.append(lines[0] if lines else "")
    return found


async def test_wado_answers_and_their_parts_carry_content_location(client: httpx.AsyncClient) -> None:
    """PS3.18 §10.4.3.2 (a payload that is a resource names it), §10.4.3.3.5-6 (each bulk part its URI)."""
    await stow(client, [dicom(CT), dicom("emri_small_jpeg_2k_lossless.dcm")])
    base = "https://pacs.example.org/lightbox/dicom-web"
    ct, multi = (dcmread(sample(name)) for name in (CT, "emri_small_jpeg_2k_lossless.dcm"))
    study, series, sop = ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID
    instance = f"{base}/studies/{study}/series/{series}/instances/{sop}"

    metadata = await client.get(f"{ROOT}/studies/{study}/series/{series}/metadata")
    assert metadata.headers["content-location"] == f"{base}/studies/{study}/series/{series}/metadata"
    pixel_uri = metadata.json()[0]["7FE00010"]["BulkDataURI"]
    assert pixel_uri == f"{instance}/bulkdata/7FE00010"

    retrieved = await client.get(
        f"{ROOT}/studies/{study}", headers={"Accept": "multipart/related; type=application/dicom"}
    )
    assert retrieved.status_code == 200
    assert retrieved.headers["content-location"] == f"{base}/studies/{study}"
    assert part_locations(retrieved) == [instance]

    frames = await client.get(f"{ROOT}/studies/{study}/series/{series}/instances/{sop}/frames/1")
    assert frames.headers["content-location"] == f"{instance}/frames/1"
    assert part_locations(frames) == [f"{instance}/frames/1"]

    bulk = await client.get(pixel_uri.removeprefix("https://pacs.example.org/lightbox"))
    assert bulk.status_code == 200 and part_locations(bulk) == [pixel_uri]
    multi_instance = f"{base}/studies/{multi.StudyInstanceUID}/series/{multi.SeriesInstanceUID}/instances/"
    multi_instance += str(multi.SOPInstanceUID)
    encapsulated = await client.get(ROOT + multi_instance.removeprefix(base) + "/bulkdata/7FE00010")
    assert part_locations(encapsulated) == [f"{multi_instance}/frames/{n}" for n in range(1, 11)]

    rendered = await client.get(f"{ROOT}/studies/{study}/series/{series}/instances/{sop}/rendered")
    assert rendered.headers["content-location"] == f"{instance}/rendered"
    search = await client.get(f"{ROOT}/studies")
    assert "content-location" not in search.headers  # a search result is no resource (PS3.18 Table 10.6.3-2)
