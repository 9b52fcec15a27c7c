"""Video files over the API: frames render in the decode sandbox, bad streams answer 4xx, downloads are stored bytes."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image
from pydicom import dcmread, uid

from app.auth.principals import LOCAL_ADMIN
from app.config import Settings
from app.errors import NotRenderable
from tests.conftest import sample, upload
from tests.dicom.video_builders import encode, frames_of, h264_sps, video_dicom

pytestmark = pytest.mark.anyio

CASES: dict[
    str, tuple[str, int | None]
] = {  # syntax as stored -> the encoder's family, and fragments of 64 bytes or one (PS3.5 8.2.5)
    uid.MPEG2MPML: (uid.MPEG2MPML, None),
    uid.MPEG2MPHLF: (uid.MPEG2MPML, 64),
    uid.MPEG4HP41F: (uid.MPEG4HP41, 64),
    uid.MPEG4HP422D: (uid.MPEG4HP41, None),
    uid.HEVCMP51: (uid.HEVCMP51, 64),
    uid.HEVCM10P51: (uid.HEVCM10P51, 64),
}


def picture(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"), dtype=np.int32)


async def store(client: httpx.AsyncClient, tmp_path: Path, data: bytes) -> tuple[str, bytes]:
    path = tmp_path / "video.dcm"
    path.write_bytes(data)
    return await upload(client, path), data


@pytest.mark.parametrize("syntax", sorted(CASES))
async def test_frames_render_as_encoded(client: httpx.AsyncClient, tmp_path: Path, syntax: str) -> None:
    family, fragment_size = CASES[syntax]
    frames = frames_of()
    name, data = await store(
        client, tmp_path, video_dicom(syntax, encode(family, frames), 5, fragment_size=fragment_size)
    )
    for frame in (1, 3, 5):
        shown = picture(await client.get(f"/dicomFile/{name}?png&frame={frame}"))
        errors = [np.abs(shown - expected).mean() for expected in frames]
        assert int(np.argmin(errors)) == frame - 1 and min(errors) < 8, errors
    first = picture(await client.get(f"/dicomFile/{name}?png"))
    assert np.abs(first - frames[0]).mean() < 8  # frame 1 by default
    jpeg = await client.get(f"/dicomFile/{name}?jpeg&frame=2&size=32")
    assert jpeg.headers["content-type"] == "image/jpeg"
    small = picture(jpeg)
    assert small.shape == (24, 32, 3)
    assert np.abs(small[16:, :] - np.array(frames[1][0, 0])).mean() < 12  # below the bar: solid green
    download = await client.get(f"/dicomFile/{name}?download")
    assert download.status_code == 200 and download.content == data


async def test_bad_video_requests_and_streams(client: httpx.AsyncClient, tmp_path: Path) -> None:
    frames = frames_of()
    name, _ = await store(client, tmp_path, video_dicom(uid.MPEG4HP41, encode(uid.MPEG4HP41, frames), frames=8))
    beyond = await client.get(f"/dicomFile/{name}?png&frame=7")
    assert beyond.status_code == 400
    assert beyond.json()["error"] == "frame 7 is out of range: the video stream holds 5 frame(s)"
    assert (await client.get(f"/dicomFile/{name}?png&frame=9")).status_code == 400

    bomb, _ = await store(client, tmp_path, video_dicom(uid.MPEG4HP41, h264_sps(1 << 16, 1 << 16), frames=1))
    refused = await client.get(f"/dicomFile/{bomb}?png")
    assert refused.status_code == 422
    assert "declares 1048576 x 1048576 pixels" in refused.json()["error"]

    noise = np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes().replace(b"\x00\x00\x01", b"")
    corrupt, _ = await store(client, tmp_path, video_dicom(uid.HEVCMP51, noise, frames=1))
    answer = await client.get(f"/dicomFile/{corrupt}?jpeg")
    assert answer.status_code == 422
    assert "could not be decoded" in answer.json()["error"]
    assert (await client.get(f"/dicomFile/{name}?png&frame=2")).status_code == 200  # the sandbox still serves


async def test_the_service_serves_the_video_itself(app: FastAPI, client: httpx.AsyncClient, tmp_path: Path) -> None:
    """What DICOMweb's rendered video needs (PS3.18 8.7.4): RenderService.video, in the decode sandbox."""
    stream = encode(uid.MPEG2MPML, frames_of())
    mpeg2, _ = await store(client, tmp_path, video_dicom(uid.MPEG2MPML, stream, 5))
    served = await app.state.renders.video(LOCAL_ADMIN, mpeg2)
    assert served.media_type == "video/mpeg" and served.content in (stream, stream + b"\x00")
    h264, _ = await store(client, tmp_path, video_dicom(uid.MPEG4HP41F, encode(uid.MPEG4HP41, frames_of()), 5, 64))
    served = await app.state.renders.video(LOCAL_ADMIN, h264)
    assert served.media_type == "video/mp4" and served.content[4:8] == b"ftyp"
    with pytest.raises(NotRenderable, match="holds no video"):
        await app.state.renders.video(LOCAL_ADMIN, await upload(client, sample("JPEG2000.dcm")))


async def test_dicomweb_serves_the_video_as_its_rendered_media_type(client: httpx.AsyncClient, tmp_path: Path) -> None:
    """PS3.18 8.7.4: a rendered video instance asked for as video/* is the video; images stay the default."""
    stream = encode(uid.MPEG4HP41, frames_of())
    header = dcmread(io.BytesIO(video_dicom(uid.MPEG4HP41F, stream, 5, 64)))
    header.StudyInstanceUID, header.SeriesInstanceUID = uid.generate_uid(), uid.generate_uid()  # addressable
    buffer = io.BytesIO()
    header.save_as(buffer, enforce_file_format=True)
    await store(client, tmp_path, buffer.getvalue())
    rendered = (
        f"/dicom-web/studies/{header.StudyInstanceUID}/series/{header.SeriesInstanceUID}"
        f"/instances/{header.SOPInstanceUID}/rendered"
    )
    video = await client.get(rendered, headers={"Accept": "video/mp4"})
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    assert (await client.get(rendered, headers={"Accept": "video/mpeg"})).status_code == 406  # H.264 is MP4
    image = await client.get(rendered)
    assert image.headers["content-type"] == "image/jpeg"  # the default rendered type (PS3.18 8.7.4)
    ct = dcmread(sample("CT_small.dcm"), stop_before_pixels=True)
    await upload(client, sample("CT_small.dcm"))
    still = (
        f"/dicom-web/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}/rendered"
    )
    assert (await client.get(still, headers={"Accept": "video/mp4"})).status_code == 406


class TestInTheSandbox:
    """Video decoding is native code on untrusted bytes: it runs in the decode sandbox, under its time limit."""

    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return Settings(storage_dir=tmp_path / "storage", decode_timeout_seconds=0.001)

    async def test_a_video_render_is_stopped_at_the_time_limit(self, client: httpx.AsyncClient, tmp_path: Path) -> None:
        name, _ = await store(client, tmp_path, video_dicom(uid.MPEG2MPML, encode(uid.MPEG2MPML, frames_of()), 5))
        answer = await client.get(f"/dicomFile/{name}?png&frame=5")
        assert answer.status_code == 422
        assert answer.json()["error"] == "decoding took longer than 0 s and was stopped"
