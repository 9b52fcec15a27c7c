"""GET /dicomFile/{name}?png|jpeg: size, quality, frames, validators, caching headers and the render cache."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from tests.conftest import sample, upload

pytestmark = pytest.mark.anyio


@pytest.fixture
async def mr(client: httpx.AsyncClient) -> str:
    return await upload(client, sample("MR2_UNCR.dcm"))  # 1024 x 1024


def picture(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


async def test_size_fits_inside_a_square(client: httpx.AsyncClient) -> None:
    name = await upload(client, sample("JPEG2000_UNC.dcm"))  # 1024 rows x 256 columns
    image = picture(await client.get(f"/dicomFile/{name}?png&size=128"))
    assert image.size == (32, 128)
    full = picture(await client.get(f"/dicomFile/{name}?png&size=4096"))
    assert full.size == (256, 1024)  # never enlarged


async def test_thumbnail_is_a_faithful_reduction(client: httpx.AsyncClient, mr: str) -> None:
    full = np.asarray(picture(await client.get(f"/dicomFile/{mr}?png")), dtype=np.float64)
    thumb = np.asarray(picture(await client.get(f"/dicomFile/{mr}?png&size=256")), dtype=np.float64)
    boxed = full.reshape(256, 4, 256, 4).mean(axis=(1, 3))  # the 4 x 4 box average of the full render
    assert np.abs(thumb - boxed).mean() < 3


async def test_jpeg_and_quality(client: httpx.AsyncClient, mr: str) -> None:
    response = await client.get(f"/dicomFile/{mr}?jpeg")
    assert response.headers["content-type"] == "image/jpeg"
    assert picture(response).format == "JPEG"
    low = await client.get(f"/dicomFile/{mr}?jpeg&quality=5")
    assert len(low.content) < len(response.content)
    full = np.asarray(picture(await client.get(f"/dicomFile/{mr}?png")), dtype=np.float64)
    assert np.abs(np.asarray(picture(response), dtype=np.float64) - full).mean() < 2


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("jpeg&quality=0", "quality"),
        ("jpeg&quality=101", "quality"),
        ("png&quality=50", "JPEG only"),
        ("png&size=0", "size"),
        ("png&size=abc", "size"),
        ("png&frame=2", "out of range"),
    ],
)
async def test_bad_options_are_400(client: httpx.AsyncClient, mr: str, query: str, fragment: str) -> None:
    response = await client.get(f"/dicomFile/{mr}?{query}")
    assert response.status_code == 400
    assert fragment in response.json()["error"]


async def test_every_option_has_its_own_etag(client: httpx.AsyncClient, mr: str) -> None:
    queries = ["png", "png&size=64", "png&window=100,200", "jpeg", "jpeg&quality=50", "jpeg&size=64"]
    etags = set()
    for query in queries:
        response = await client.get(f"/dicomFile/{mr}?{query}")
        assert response.headers["cache-control"].startswith("private")
        etags.add(response.headers["etag"])
        again = await client.get(f"/dicomFile/{mr}?{query}", headers={"if-none-match": response.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    assert len(etags) == len(queries)


async def test_if_none_match_star_and_lists(client: httpx.AsyncClient, mr: str) -> None:
    etag = (await client.get(f"/dicomFile/{mr}?png")).headers["etag"]
    assert (await client.get(f"/dicomFile/{mr}?png", headers={"if-none-match": "*"})).status_code == 304
    listed = await client.get(f"/dicomFile/{mr}?png", headers={"if-none-match": f'"other", W/{etag}'})
    assert listed.status_code == 304
    assert (await client.get(f"/dicomFile/{mr}?png", headers={"if-none-match": '"other"'})).status_code == 200


async def test_multi_frame_frames(client: httpx.AsyncClient) -> None:
    name = await upload(client, sample("emri_small.dcm"))  # 10 frames
    first = np.asarray(picture(await client.get(f"/dicomFile/{name}?png&frame=1")))
    last = np.asarray(picture(await client.get(f"/dicomFile/{name}?png&frame=10")))
    assert not np.array_equal(first, last)
    assert (await client.get(f"/dicomFile/{name}?png&frame=11")).status_code == 400


async def test_repeats_come_from_the_render_cache(app: FastAPI, client: httpx.AsyncClient, mr: str) -> None:
    first = await client.get(f"/dicomFile/{mr}?png&size=100")
    cache = app.state.renders.cache
    hits = cache.hits
    second = await client.get(f"/dicomFile/{mr}?png&size=100")
    assert second.content == first.content and cache.hits == hits + 1


async def test_corrupt_codec_stream_is_a_clear_422(client: httpx.AsyncClient) -> None:
    """Files cut short are refused at upload; a valid structure with a broken codestream is refused at render."""
    stored = await upload(client, sample("JPEG2000-embedded-sequence-delimiter.dcm"))
    response = await client.get(f"/dicomFile/{stored}?png")
    assert response.status_code == 422
    # refused from the SIZ header alone: it declares an impossible tile grid
    assert "stream is corrupt" in response.json()["error"]
