"""POST /upload: the contract, validation, and that nothing is left behind on failure."""

import hashlib
import re
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.conftest import sample, stored_bytes, stored_files, upload

pytestmark = pytest.mark.anyio
NAME = re.compile(r"^File saved as: ([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})-(.+)$")


async def test_upload_contract_and_exact_bytes(client: httpx.AsyncClient, settings: Settings) -> None:
    data = sample("CT_small.dcm").read_bytes()
    response = await client.post("/upload", files={"file": ("CT_small.dcm", data)})
    assert response.status_code == 201
    match = NAME.match(response.json()["message"])
    assert match and match.group(2) == "CT_small.dcm"
    name = response.json()["message"].removeprefix("File saved as: ")
    assert hashlib.sha256(stored_bytes(settings, name)).digest() == hashlib.sha256(data).digest()
    assert len(stored_files(settings)) == 1


async def test_dcm_appended_when_missing(client: httpx.AsyncClient) -> None:
    name = await upload(client, sample("CT_small.dcm"), filename="IM000001")
    assert name.endswith("-IM000001.dcm")


async def test_hostile_file_name_is_reduced(client: httpx.AsyncClient, settings: Settings) -> None:
    name = await upload(client, sample("CT_small.dcm"), filename="../../../etc/cron.d/evil")
    assert name.endswith("-evil.dcm")
    (stored,) = stored_files(settings)
    assert "/" not in stored  # directly in the folder, or directly under the bucket's prefix


async def test_bare_data_set_is_accepted(client: httpx.AsyncClient) -> None:
    assert (await upload(client, sample("rtstruct.dcm"))).endswith("-rtstruct.dcm")


@pytest.mark.parametrize(
    "data",
    [b"", b"not dicom at all\n" * 20, b"\x00" * 128 + b"DICM", sample("CT_small.dcm").read_bytes()[:1000]],
    ids=["empty", "text", "preamble-only", "truncated"],
)
async def test_invalid_files_are_refused_and_leave_nothing(
    client: httpx.AsyncClient, settings: Settings, data: bytes
) -> None:
    response = await client.post("/upload", files={"file": ("x.dcm", data)})
    assert response.status_code == 400
    assert response.json()["error"]
    assert stored_files(settings) == []


async def test_missing_file_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/upload", files={"other": ("x.dcm", b"abc")})
    assert response.status_code == 400
    assert "file" in response.json()["error"]
    response = await client.post("/upload", data={"file": "just text"})
    assert response.status_code == 400
    response = await client.post("/upload", content=b"raw", headers={"content-type": "application/dicom"})
    assert response.status_code == 400


async def test_size_limit_answers_413_early(tmp_path: Path) -> None:
    from app.main import create_app

    settings = Settings(storage_dir=tmp_path / "s", max_upload_bytes=10_000)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            big = sample("CT_small.dcm").read_bytes()
            response = await client.post("/upload", files={"file": ("ct.dcm", big)})
            assert response.status_code == 413
            assert "limit" in response.json()["error"]
            response = await client.post(
                "/upload",
                content=b"x",
                headers={"content-type": "multipart/form-data; boundary=b", "content-length": str(5 * 1024**3)},
            )
            assert response.status_code == 413
    assert stored_files(settings) == []


async def test_malformed_multipart(client: httpx.AsyncClient, settings: Settings) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.dcm"\r\n\r\n' + b"\x00" * 500
    response = await client.post("/upload", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 400
    assert stored_files(settings) == []
