"""dicomweb-client (the PyPI client many pipelines use) against a real Lightbox on 127.0.0.1.

Store, the three searches, retrieve, metadata with bulk data, frames and renders, on pydicom's
bundled files covering every supported transfer syntax. Each file gets fresh instance UIDs (several
bundled files share one), its encoded pixel data untouched.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.conftest import sample
from tests.e2e.server import RunningServer, run_server

#: One file per transfer syntax (and multi-frame, colour), all bundled with pydicom or pydicom-data.
FILES = {
    "CT_small.dcm": "1.2.840.10008.1.2.1",
    "MR_small_implicit.dcm": "1.2.840.10008.1.2",
    "MR_small_bigendian.dcm": "1.2.840.10008.1.2.2",
    "image_dfl.dcm": "1.2.840.10008.1.2.1.99",
    "MR_small_RLE.dcm": "1.2.840.10008.1.2.5",
    "SC_jpeg_no_color_transform.dcm": "1.2.840.10008.1.2.4.50",
    "JPEG-lossy.dcm": "1.2.840.10008.1.2.4.51",
    "SC_rgb_jpeg_gdcm.dcm": "1.2.840.10008.1.2.4.70",
    "MR_small_jpeg_ls_lossless.dcm": "1.2.840.10008.1.2.4.80",
    "JPEGLSNearLossless_16.dcm": "1.2.840.10008.1.2.4.81",
    "emri_small_jpeg_2k_lossless.dcm": "1.2.840.10008.1.2.4.90",
    "JPEG2000.dcm": "1.2.840.10008.1.2.4.91",
    "SC_rgb_rle_2frame.dcm": "1.2.840.10008.1.2.5",
    "emri_small.dcm": "1.2.840.10008.1.2.1",
    "SC_rgb.dcm": "1.2.840.10008.1.2.1",
}


def _fresh(name: str, folder: Path) -> Path:
    """``name`` with new SOP Instance and Series UIDs (same study, same encoded pixels), written to ``folder``."""
    ds = dcmread(sample(name))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    if "StudyInstanceUID" not in ds:
        ds.StudyInstanceUID = generate_uid()
    path = folder / name
    ds.save_as(path)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("dicomweb")) as running:
        yield running


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("files")
    return {name: _fresh(name, folder) for name in FILES}


@pytest.fixture(scope="module")
def client(server: RunningServer) -> DICOMwebClient:
    return DICOMwebClient(url=f"{server.url}/dicom-web")


@pytest.fixture(scope="module")
def stored(client: DICOMwebClient, files: dict[str, Path]) -> dict[str, Dataset]:
    """Every file stored through STOW-RS; the originals by name."""
    datasets: dict[str, Dataset] = {name: dcmread(path) for name, path in files.items()}
    answer = client.store_instances(list(datasets.values()))
    assert "FailedSOPSequence" not in answer
    assert len(answer.ReferencedSOPSequence) == len(FILES)
    for item in answer.ReferencedSOPSequence:
        assert item.RetrieveURL.startswith(client.base_url + "/studies/")
    return datasets


def _uids(ds: Dataset) -> tuple[str, str, str]:
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def test_store_again_answers_each_instance_as_stored(client: DICOMwebClient, stored: dict[str, Dataset]) -> None:
    answer = client.store_instances([stored["CT_small.dcm"]])
    assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [
        stored["CT_small.dcm"].SOPInstanceUID
    ]


def test_search_studies_series_and_instances(client: DICOMwebClient, stored: dict[str, Dataset]) -> None:
    studies = {str(ds.StudyInstanceUID) for ds in stored.values()}
    found = client.search_for_studies()
    assert {result["0020000D"]["Value"][0] for result in found} == studies
    ct = stored["CT_small.dcm"]
    study, series, instance = _uids(ct)
    (result,) = client.search_for_studies(search_filters={"StudyInstanceUID": study})
    assert result["00080061"]["Value"] == ["CT"]
    assert result["00201206"]["Value"] == [1]  # NumberOfStudyRelatedSeries
    assert result["00081190"]["Value"] == [f"{client.base_url}/studies/{study}"]
    (series_result,) = client.search_for_series(study_instance_uid=study)
    assert series_result["0020000E"]["Value"] == [series]
    assert series_result["00201209"]["Value"] == [1]  # NumberOfSeriesRelatedInstances
    (instance_result,) = client.search_for_instances(study_instance_uid=study, series_instance_uid=series)
    assert instance_result["00080018"]["Value"] == [instance]
    everything = client.search_for_instances()
    assert len(everything) == len(FILES)


def test_search_filters_wildcards_person_names_and_paging(client: DICOMwebClient, stored: dict[str, Dataset]) -> None:
    compressed = {str(ds.StudyInstanceUID) for ds in stored.values() if "Compressed" in str(ds.get("PatientName", ""))}
    # the call Orthanc answers with nothing: the client percent-encodes the wildcard (Compre%2A)
    found = client.search_for_studies(search_filters={"PatientName": "Compre*"})
    assert {result["0020000D"]["Value"][0] for result in found} == compressed
    exact = client.search_for_studies(search_filters={"PatientName": "compressedsamples^ct1"})
    assert [r["0020000D"]["Value"][0] for r in exact] == [stored["CT_small.dcm"].StudyInstanceUID]
    assert client.search_for_studies(search_filters={"PatientName": "Nobody*"}) == []
    page = client.search_for_instances(limit=3, offset=2)
    assert len(page) == 3
    mr = client.search_for_series(search_filters={"Modality": "MR"}, fields=["SeriesDescription", "00280010"])
    assert mr and all(result["00080060"]["Value"] == ["MR"] for result in mr)
    assert all("00280010" in result or "00080060" in result for result in mr)


def test_retrieve_in_explicit_little_endian_keeps_the_pixels(
    client: DICOMwebClient, stored: dict[str, Dataset], files: dict[str, Path]
) -> None:
    """Every stored transfer syntax transcodes to Explicit VR Little Endian (the standard's default)."""
    wanted = (("application/dicom", str(ExplicitVRLittleEndian)),)
    for name, original in stored.items():
        study, series, instance = _uids(original)
        received = client.retrieve_instance(study, series, instance, media_types=wanted)
        assert received.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian, name
        expected = dcmread(files[name]).pixel_array
        assert np.array_equal(received.pixel_array, expected), name


def test_retrieve_as_stored(client: DICOMwebClient, stored: dict[str, Dataset]) -> None:
    """The client's default for an instance is transfer-syntax=*: each comes in its stored syntax."""
    for name, original in stored.items():
        study, series, instance = _uids(original)
        received = client.retrieve_instance(study, series, instance)
        assert received.file_meta.TransferSyntaxUID == FILES[name], name
        assert received.SOPInstanceUID == original.SOPInstanceUID
    study, series, _ = _uids(stored["emri_small.dcm"])
    assert len(client.retrieve_series(study, series, media_types=(("application/dicom", "*"),))) == 1
    ct_study = stored["CT_small.dcm"].StudyInstanceUID
    assert [ds.SOPInstanceUID for ds in client.retrieve_study(ct_study)] == [stored["CT_small.dcm"].SOPInstanceUID]


def test_metadata_bulk_data_uris_resolve(client: DICOMwebClient, stored: dict[str, Dataset]) -> None:
    original = stored["emri_small.dcm"]
    study, series, instance = _uids(original)
    (metadata,) = client.retrieve_series_metadata(study, series)
    assert metadata["00080018"]["Value"] == [instance]
    pixel_uri = metadata["7FE00010"]["BulkDataURI"]
    assert pixel_uri.startswith(client.base_url)
    (pixels,) = client.retrieve_bulkdata(pixel_uri)
    assert pixels == original.PixelData
    assert client.retrieve_instance_metadata(study, series, instance) == metadata
    assert len(client.retrieve_study_metadata(study)) >= 1


def test_frames_with_the_clients_default_media_types(client: DICOMwebClient, stored: dict[str, Dataset]) -> None:
    """The client's default Accept is multipart/related; type="*/*": frames come as stored."""
    for name, original in stored.items():
        study, series, instance = _uids(original)
        frames = int(original.get("NumberOfFrames", 1) or 1)
        numbers = [1, frames] if frames > 1 else [1]
        received = client.retrieve_instance_frames(study, series, instance, frame_numbers=numbers)
        assert len(received) == len(numbers), name
        if original.file_meta.TransferSyntaxUID.is_compressed:
            for got, number in zip(received, numbers, strict=True):
                assert got == get_frame(original.PixelData, number - 1, number_of_frames=frames), name
        else:
            expected = original.pixel_array.reshape((frames, -1))[numbers[0] - 1]
            assert np.frombuffer(received[0], dtype=expected.dtype.newbyteorder("<")).tolist() == expected.tolist()


def test_frames_as_stored_and_decoded_on_request(client: DICOMwebClient, stored: dict[str, Dataset]) -> None:
    original = stored["emri_small_jpeg_2k_lossless.dcm"]
    study, series, instance = _uids(original)
    (jp2,) = client.retrieve_instance_frames(
        study, series, instance, frame_numbers=[3], media_types=(("image/jp2", "1.2.840.10008.1.2.4.90"),)
    )
    assert jp2 == get_frame(original.PixelData, 2, number_of_frames=10)
    (decoded,) = client.retrieve_instance_frames(
        study, series, instance, frame_numbers=[3], media_types=("application/octet-stream",)
    )
    expected = original.pixel_array[2]
    assert np.array_equal(np.frombuffer(decoded, dtype="<u2").reshape(expected.shape), expected)


def test_rendered_png_and_jpeg(client: DICOMwebClient, stored: dict[str, Dataset]) -> None:
    for name in ("CT_small.dcm", "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm"):
        study, series, instance = _uids(stored[name])
        png = client.retrieve_instance_rendered(study, series, instance, media_types=("image/png",))
        assert Image.open(io.BytesIO(png)).format == "PNG"
        jpeg = client.retrieve_instance_frames_rendered(study, series, instance, frame_numbers=[1])
        assert Image.open(io.BytesIO(jpeg)).format == "JPEG"


def test_the_calls_orthanc_fails_over_plain_http(server: RunningServer, stored: dict[str, Dataset]) -> None:
    root = f"{server.url}/dicom-web"
    # an encoded wildcard and an encoded ^ are decoded before matching
    found = httpx.get(f"{root}/studies?PatientName=compressedsamples%5Ect%2A")
    assert found.status_code == 200
    assert {r["0020000D"]["Value"][0] for r in found.json()} == {stored["CT_small.dcm"].StudyInstanceUID}
    study, series, instance = _uids(stored["JPEG2000.dcm"])
    frames = httpx.get(
        f"{root}/studies/{study}/series/{series}/instances/{instance}/frames/1",
        headers={"Accept": 'multipart/related; type="*/*"'},
    )
    assert frames.status_code == 200
    assert frames.headers["content-type"].startswith('multipart/related; type="image/jp2"')
    octets = httpx.get(
        f"{root}/studies/{study}/series/{series}/instances/{instance}/frames/1",
        headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
    )
    assert b"Content-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.91\r\n" in octets.content


def test_wado_uri(server: RunningServer, stored: dict[str, Dataset], files: dict[str, Path]) -> None:
    study, series, instance = _uids(stored["CT_small.dcm"])
    params = {"requestType": "WADO", "studyUID": study, "seriesUID": series, "objectUID": instance}
    dicom = httpx.get(f"{server.url}/dicom-web/wado", params={**params, "contentType": "application/dicom"})
    assert dicom.status_code == 200
    assert dicom.content == files["CT_small.dcm"].read_bytes()
    jpeg = httpx.get(f"{server.url}/dicom-web/wado", params={**params, "rows": "64", "columns": "64"})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(jpeg.content)).size) == 64


def test_content_location_keeps_the_port_when_the_host_header_drops_it(
    server: RunningServer, stored: dict[str, Dataset]
) -> None:
    """dicomweb-client sends ``Host`` without the port: links and Content-Location still name this port."""
    study, series, instance = _uids(stored["CT_small.dcm"])
    path = f"/dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata"
    answer = httpx.get(server.url + path, headers={"Host": "127.0.0.1"})
    assert answer.headers["content-location"] == server.url + path
    assert answer.json()[0]["7FE00010"]["BulkDataURI"].startswith(f"{server.url}/dicom-web/studies/{study}/")
