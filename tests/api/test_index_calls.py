"""Duplicates, bulk and ZIP uploads, list/search, ?metadata, ?download and DELETE."""

import asyncio
import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydicom import dcmread
from pydicom.uid import UID, generate_uid

from app.config import Settings
from tests.conftest import S3, remove_blob, sample, stored_bytes, stored_files, upload

pytestmark = pytest.mark.anyio


def variant(name: str, **changes: str) -> bytes:
    """A sample file with some attributes changed (a new SOP Instance UID unless given)."""
    dataset = dcmread(sample(name))
    changes.setdefault("SOPInstanceUID", str(generate_uid()))
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    dataset.file_meta.MediaStorageSOPInstanceUID = UID(changes["SOPInstanceUID"])
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def post_files(client: httpx.AsyncClient, *files: tuple[str, bytes]) -> httpx.Response:
    return await client.post("/upload", files=[("file", f) for f in files])


# -- duplicates -------------------------------------------------------------------------------
async def test_identical_bytes_are_stored_once(client: httpx.AsyncClient, settings: Settings) -> None:
    name = await upload(client, sample("CT_small.dcm"))
    again = await client.post("/upload", files={"file": ("other.dcm", sample("CT_small.dcm").read_bytes())})
    assert again.status_code == 200
    assert again.json()["message"] == f"File already saved as: {name}"
    assert len(stored_files(settings)) == 1
    # the duplicate was published under its own name and removed again: the earlier copy is untouched
    assert stored_bytes(settings, name) == sample("CT_small.dcm").read_bytes()
    assert (await client.get(f"/dicomFile/{name}?download")).content == sample("CT_small.dcm").read_bytes()


async def test_a_resent_file_costs_an_object_store_no_transfer(
    app: FastAPI, client: httpx.AsyncClient, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an object store the index is asked before a put, so a resent file is never sent to the store; on a
    folder it is linked and unlinked again (cheaper than the read). The real store is called either way."""
    store = app.state.instances.store
    puts: list[str] = []
    put = store.put

    def counted_put(staged: Any, key: str) -> None:
        puts.append(key)
        put(staged, key)

    monkeypatch.setattr(store, "put", counted_put)
    name = await upload(client, sample("CT_small.dcm"))
    again = await client.post("/upload", files={"file": ("again.dcm", sample("CT_small.dcm").read_bytes())})
    conflict = variant("CT_small.dcm", SOPInstanceUID=dcmread(sample("CT_small.dcm")).SOPInstanceUID, PatientID="x")
    refused = await client.post("/upload", files={"file": ("conflict.dcm", conflict)})

    assert (again.status_code, again.json()["message"]) == (200, f"File already saved as: {name}")
    assert refused.status_code == 409
    assert len(puts) == (1 if backend == S3 else 3)


async def test_same_sop_instance_uid_different_bytes_is_a_conflict(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    name = await upload(client, sample("CT_small.dcm"))
    original_uid = dcmread(sample("CT_small.dcm")).SOPInstanceUID
    changed = variant("CT_small.dcm", SOPInstanceUID=original_uid, PatientName="Someone^Else")
    response = await client.post("/upload", files={"file": ("changed.dcm", changed)})
    assert response.status_code == 409
    assert response.json()["name"] == name and original_uid in response.json()["error"]
    assert len(stored_files(settings)) == 1
    assert stored_bytes(settings, name) == sample("CT_small.dcm").read_bytes()


async def test_concurrent_identical_uploads_store_one_file(client: httpx.AsyncClient, settings: Settings) -> None:
    data = sample("MR_small.dcm").read_bytes()
    responses = await asyncio.gather(*(client.post("/upload", files={"file": ("mr.dcm", data)}) for _ in range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 200, 200, 201]
    assert len(stored_files(settings)) == 1
    assert len({r.json()["name"] for r in responses}) == 1
    assert stored_bytes(settings, responses[0].json()["name"]) == data


# -- bulk and ZIP -----------------------------------------------------------------------------
async def test_several_files_all_stored(client: httpx.AsyncClient) -> None:
    response = await post_files(client, ("a.dcm", variant("CT_small.dcm")), ("b.dcm", variant("MR_small.dcm")))
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Saved 2 of 2 files"
    assert [(f["file"], f["status"]) for f in body["files"]] == [("a.dcm", 201), ("b.dcm", 201)]
    assert all(f["name"].endswith(f["file"]) for f in body["files"])


async def test_partial_failure_is_202_and_all_duplicates_200(client: httpx.AsyncClient, settings: Settings) -> None:
    good = variant("CT_small.dcm")
    response = await post_files(client, ("good.dcm", good), ("bad.dcm", b"not dicom" * 50))
    assert response.status_code == 202
    files = response.json()["files"]
    assert files[0]["status"] == 201 and files[1]["status"] == 400 and "error" in files[1]
    again = await post_files(client, ("good.dcm", good), ("good2.dcm", good))
    assert again.status_code == 200 and {f["status"] for f in again.json()["files"]} == {200}
    assert len(stored_files(settings)) == 1


async def test_nothing_stored_is_4xx(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await post_files(client, ("x.dcm", b"junk" * 100), ("y.dcm", b""))
    assert response.status_code == 400
    assert response.json()["message"] == "Saved 0 of 2 files"
    assert stored_files(settings) == []


async def test_zip_members_are_stored_and_others_reported(client: httpx.AsyncClient, settings: Settings) -> None:
    archive = zip_of(
        {"study/one.dcm": variant("CT_small.dcm"), "study/two": variant("MR_small.dcm"), "README.txt": b"hello"}
    )
    response = await client.post("/upload", files={"file": ("study.zip", archive)})
    assert response.status_code == 202
    files = {f["file"]: f for f in response.json()["files"]}
    assert files["study/one.dcm"]["status"] == 201 and files["study/two"]["name"].endswith("-two.dcm")
    assert files["README.txt"]["status"] == 400
    assert len(stored_files(settings)) == 2 and not any(".staging" in p for p in stored_files(settings))


async def test_zip_with_only_dicom_is_201_with_bulk_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/upload", files={"file": ("one.zip", zip_of({"a.dcm": variant("CT_small.dcm")}))})
    assert response.status_code == 201
    assert response.json()["message"] == "Saved 1 of 1 files"


@pytest.mark.parametrize(
    ("overrides", "members", "status", "fragment"),
    [
        ({"zip_max_members": 2}, {f"{i}.dcm": b"x" for i in range(3)}, 413, "lists 3 files"),
        ({"zip_max_ratio": 10}, {"bomb.dcm": b"\0" * (4 << 20)}, 400, "zip bomb"),
        ({"zip_max_total_bytes": 1000}, {"big.dcm": b"\0" * 2000}, 413, "inflate"),
        ({}, {}, 400, "no files"),
    ],
)
async def test_zip_guards(
    tmp_path: Path, overrides: dict[str, int], members: dict[str, bytes], status: int, fragment: str
) -> None:
    from app.main import create_app

    settings = Settings(storage_dir=tmp_path / "s", **overrides)  # type: ignore[arg-type]
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.post("/upload", files={"file": ("a.zip", zip_of(members))})
        assert response.status_code == status, response.text
        assert fragment in response.text
    assert stored_files(settings) == []


async def test_per_request_file_limit(tmp_path: Path) -> None:
    from app.main import create_app

    settings = Settings(storage_dir=tmp_path / "s", max_files_per_upload=2)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        parts = [(f"{i}.dcm", variant("CT_small.dcm")) for i in range(3)]
        response = await post_files(client, *parts)
        assert response.status_code == 202
        assert [f["status"] for f in response.json()["files"]] == [201, 201, 413]
    assert len(stored_files(settings)) == 2


# -- list -------------------------------------------------------------------------------------
@pytest.fixture
async def three(client: httpx.AsyncClient) -> list[str]:
    names = []
    for patient, name, date, modality in [
        ("P1", "Smith^Anna", "20200105", "CT"),
        ("P2", "Smith^Bob", "20210610", "MR"),
        ("P3", "Jones^Carl", "20220301", "CT"),
    ]:
        data = variant(
            "CT_small.dcm",
            PatientID=patient,
            PatientName=name,
            StudyDate=date,
            Modality=modality,
            StudyInstanceUID=generate_uid(),
            SeriesInstanceUID=generate_uid(),
        )
        response = await client.post("/upload", files={"file": (f"{patient}.dcm", data)})
        names.append(response.json()["name"])
    return names


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, [2, 1, 0]),
        ({"PatientID": "P2"}, [1]),
        ({"PatientID": "P*"}, [2, 1, 0]),
        ({"PatientName": "smith*"}, [1, 0]),
        ({"PatientName": "*^?ob"}, [1]),
        ({"Modality": "CT"}, [2, 0]),
        ({"StudyDate": "20210610"}, [1]),
        ({"StudyDate": "20200101-20211231"}, [1, 0]),
        ({"StudyDate": "20210101-"}, [2, 1]),
        ({"StudyDate": "-20201231"}, [0]),
        ({"PatientID": "P_"}, []),
        ({"limit": "1", "offset": "1"}, [1]),
    ],
)
async def test_list_filters(
    client: httpx.AsyncClient, three: list[str], query: dict[str, str], expected: list[int]
) -> None:
    response = await client.get("/dicomFile", params=query)
    assert response.status_code == 200
    body = response.json()
    assert [row["name"] for row in body["data"]] == [three[i] for i in expected]
    if "limit" not in query:
        assert body["total"] == len(expected)


async def test_list_row_shape(client: httpx.AsyncClient, three: list[str]) -> None:
    body = (await client.get("/dicomFile", params={"PatientID": "P1"})).json()
    assert body["total"] == 1 and body["limit"] == 100 and body["offset"] == 0
    row = body["data"][0]
    assert row["name"] == three[0] and row["patient-id"] == "P1" and row["modality"] == "CT"
    assert row["size"] > 0 and row["sop-instance-uid"] and row["study-instance-uid"] and row["series-instance-uid"]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "1001"},
        {"limit": "0"},
        {"offset": "-1"},
        {"StudyDate": "2020"},
        {"StudyDate": "20201301"},
        {"StudyDate": "20211231-20200101"},
        {"StudyDate": "-"},
    ],
)
async def test_list_bad_queries(client: httpx.AsyncClient, query: dict[str, str]) -> None:
    response = await client.get("/dicomFile", params=query)
    assert response.status_code == 400
    assert response.json()["error"]


# -- metadata, download, delete ---------------------------------------------------------------
async def test_metadata_is_dicom_json(client: httpx.AsyncClient) -> None:
    name = await upload(client, sample("CT_small.dcm"))
    response = await client.get(f"/dicomFile/{name}?metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom+json"
    body = response.json()
    assert isinstance(body, list) and len(body) == 1
    header = body[0]
    assert header["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}
    assert header["00280010"] == {"vr": "US", "Value": [128]}
    assert "7FE00010" not in header


async def test_download_is_byte_identical(client: httpx.AsyncClient) -> None:
    data = sample("MR_small.dcm").read_bytes()
    name = await upload(client, sample("MR_small.dcm"))
    response = await client.get(f"/dicomFile/{name}?download")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom"
    assert response.content == data


async def test_delete(client: httpx.AsyncClient, settings: Settings) -> None:
    name = await upload(client, sample("CT_small.dcm"))
    assert (await client.get(f"/dicomFile/{name}?tag=Rows")).status_code == 200
    response = await client.delete(f"/dicomFile/{name}")
    assert response.status_code == 204 and response.content == b""
    assert stored_files(settings) == []
    for query in ("tag=Rows", "metadata", "download", "png"):
        assert (await client.get(f"/dicomFile/{name}?{query}")).status_code == 404
    assert (await client.get("/dicomFile")).json()["total"] == 0
    assert (await client.delete(f"/dicomFile/{name}")).status_code == 404
    # the same file can be uploaded again after deletion
    assert (
        await client.post("/upload", files={"file": ("ct.dcm", sample("CT_small.dcm").read_bytes())})
    ).status_code == 201


async def test_tag_is_answered_from_the_index(client: httpx.AsyncClient, settings: Settings) -> None:
    """With the file gone from disk (out of band), header elements still answer; bulk values cannot."""
    name = await upload(client, sample("CT_small.dcm"))
    remove_blob(settings, name)
    response = await client.get(f"/dicomFile/{name}", params={"tag": "SliceThickness"})
    assert response.status_code == 200 and response.json()["data"]["header-attribute-value"] == "[5.000000]"
    bulk = await client.get(f"/dicomFile/{name}", params={"tag": "PixelData"})
    assert bulk.status_code == 503 and bulk.json() == {"error": "the stored file is missing from storage"}
