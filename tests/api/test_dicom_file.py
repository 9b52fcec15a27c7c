"""GET /dicomFile/{name}: ?tag= answers and errors, ?png renders, caching headers."""

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import sample, upload

pytestmark = pytest.mark.anyio


@pytest.fixture
async def ct(client: httpx.AsyncClient) -> str:
    return await upload(client, sample("CT_small.dcm"))


async def test_tag_contract(client: httpx.AsyncClient, ct: str) -> None:
    response = await client.get(f"/dicomFile/{ct}", params={"tag": "(0002,0002)"})
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "header-attribute-name": "MediaStorageSOPClassUID",
            "header-attribute-value": "[1.2.840.10008.5.1.4.1.1.2]",
            "tag-values": "(0002,0002)",
            "vr": "UI",
            "value": ["1.2.840.10008.5.1.4.1.1.2"],
        }
    }


@pytest.mark.parametrize(
    ("tag", "keyword", "text"),
    [
        ("(0008,0008)", "ImageType", "[ORIGINAL PRIMARY AXIAL]"),
        ("0028,0010", "Rows", "[128]"),
        ("00280030", "PixelSpacing", "[0.661468 0.661468]"),
        ("(0018,0050)", "SliceThickness", "[5.000000]"),
        ("PatientName", "PatientName", "[CompressedSamples^CT1]"),
        ("(0043,104e)", "[Duration of X-ray on]", "[10.60061]"),
        ("(7fe0,0010)", "PixelData", "[32768 bytes]"),
    ],
)
async def test_tag_spellings_and_forms(client: httpx.AsyncClient, ct: str, tag: str, keyword: str, text: str) -> None:
    data = (await client.get(f"/dicomFile/{ct}", params={"tag": tag})).json()["data"]
    assert (data["header-attribute-name"], data["header-attribute-value"], data["tag-values"]) == (keyword, text, tag)


@pytest.mark.parametrize(
    ("query", "status", "fragment"),
    [
        ({"tag": "(zzzz,0010)"}, 400, "malformed"),
        ({"tag": "(0010,9999)"}, 404, "not present"),
        ({}, 400, "?png"),
        ({"png": "", "frame": "2"}, 400, "out of range"),
        ({"png": "", "frame": "0"}, 400, "frame"),
        ({"png": "", "window": "abc"}, 400, "window"),
        ({"png": "", "window": "40,0"}, 400, "window"),
    ],
)
async def test_errors(client: httpx.AsyncClient, ct: str, query: dict[str, str], status: int, fragment: str) -> None:
    response = await client.get(f"/dicomFile/{ct}", params=query)
    assert response.status_code == status
    assert fragment in response.json()["error"]


@pytest.mark.parametrize("name", ["nope", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%00"])
async def test_unknown_names(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/dicomFile/{name}", params={"tag": "(0008,0016)"})
    assert response.status_code == 404
    assert "error" in response.json()


async def test_tag_wins_over_png(client: httpx.AsyncClient, ct: str) -> None:
    response = await client.get(f"/dicomFile/{ct}?png&tag=Rows")
    assert response.json()["data"]["header-attribute-value"] == "[128]"


async def test_png_render_and_etag(client: httpx.AsyncClient, ct: str) -> None:
    response = await client.get(f"/dicomFile/{ct}?png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert "private" in response.headers["cache-control"]
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    assert image.shape == (128, 128) and image.min() == 0 and image.max() == 255
    etag = response.headers["etag"]
    again = await client.get(f"/dicomFile/{ct}?png", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    other = await client.get(f"/dicomFile/{ct}?png&window=40,400", headers={"if-none-match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag


async def test_colour_png(client: httpx.AsyncClient) -> None:
    name = await upload(client, sample("SC_rgb.dcm"))
    image = Image.open(io.BytesIO((await client.get(f"/dicomFile/{name}?png")).content))
    assert image.mode == "RGB"


async def test_file_without_image(client: httpx.AsyncClient) -> None:
    name = await upload(client, sample("rtplan.dcm"))
    response = await client.get(f"/dicomFile/{name}?png")
    assert response.status_code == 422
    assert "no image" in response.json()["error"]


async def test_unknown_route_is_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert "error" in response.json()
