"""DCMTK's own clients (echoscu, storescu, findscu, getscu) against a real ``lightbox`` with its DICOM listener.

A file sent by ``storescu`` in each transfer syntax is then found by ``GET /dicomFile``, renders by
``?png``, keeps its transfer syntax, and its data set equals the one sent (only the file meta differs).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest

from tests.conftest import sample
from tests.e2e.server import RunningServer, free_port, run_server

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="Debian dcmtk is not installed")

AET = "DCMTK"
# file -> the storescu option proposing its transfer syntax (PS3.5 A.4)
SENT = {
    "CT_small.dcm": "-xe",  # Explicit VR Little Endian
    "MR_small_implicit.dcm": "-xi",  # Implicit VR Little Endian
    "MR_small_bigendian.dcm": "-xb",  # Explicit VR Big Endian (retired)
    "JPGLosslessP14SV1_1s_1f_8b.dcm": "-xs",  # JPEG lossless SV1
    "SC_rgb_jpeg_dcmtk.dcm": "-xy",  # JPEG baseline
    "emri_small_jpeg_2k_lossless.dcm": "-xv",  # JPEG 2000 lossless
    "JPEG2000.dcm": "-xw",  # JPEG 2000
    "emri_small_jpeg_ls_lossless.dcm": "-xt",  # JPEG-LS lossless
    "MR_small_RLE.dcm": "-xr",  # RLE lossless
    "image_dfl.dcm": "-xd",  # Deflated Explicit VR Little Endian
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, int]]:
    port = free_port()
    env = {"LIGHTBOX_DIMSE_PORT": str(port), "LIGHTBOX_DIMSE_PEERS": f"{AET}@127.0.0.1:local"}
    with run_server(tmp_path_factory.mktemp("dimse"), env=env) as running:
        yield running, port


def dcmtk(tool: str, port: int, *args: str, aet: str = AET) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, "-aet", aet, "-aec", "LIGHTBOX", "127.0.0.1", str(port), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored_name(server: RunningServer, sop_instance_uid: str) -> str:
    listed = httpx.get(f"{server.url}/dicomFile", params={"SOPInstanceUID": sop_instance_uid}).json()
    assert listed["total"] == 1, listed
    name: str = listed["data"][0]["name"]
    return name


def without_padding(dataset: pydicom.Dataset) -> dict[int, object]:
    """Values by tag, less Data Set Trailing Padding (FFFC,FFFC): PS3.10 7.2 keeps it to files, so senders
    drop it. VRs are left out: DCMTK corrects encapsulated Pixel Data declared OW to OB (PS3.5 A.4)."""
    return {int(element.tag): element.value for element in dataset if element.tag != 0xFFFCFFFC}


def test_echoscu_is_answered(server: tuple[RunningServer, int]) -> None:
    result = dcmtk("echoscu", server[1], "-v")
    assert result.returncode == 0, result.stderr
    assert "Received Echo Response (Success)" in result.stderr


def test_an_unknown_calling_ae_title_is_rejected(server: tuple[RunningServer, int]) -> None:
    result = dcmtk("echoscu", server[1], "-v", aet="STRANGER")
    assert result.returncode != 0
    assert "Calling AE Title Not Recognized" in result.stderr


@pytest.mark.parametrize(("file", "option"), SENT.items())
def test_storescu_in_each_transfer_syntax(server: tuple[RunningServer, int], file: str, option: str) -> None:
    running, port = server
    path = sample(file)
    sent = pydicom.dcmread(path)
    result = dcmtk("storescu", port, "-v", option, str(path))
    assert result.returncode == 0, result.stderr
    assert "Received Store Response (Success)" in result.stderr

    name = stored_name(running, str(sent.SOPInstanceUID))
    syntax = httpx.get(f"{running.url}/dicomFile/{name}", params={"tag": "(0002,0010)"}).json()["data"]
    assert syntax["value"] == [str(sent.file_meta.TransferSyntaxUID)]
    source = httpx.get(f"{running.url}/dicomFile/{name}", params={"tag": "(0002,0016)"}).json()["data"]
    assert source["value"] == [AET]
    stored = pydicom.dcmread(
        pydicom.filebase.DicomBytesIO(httpx.get(f"{running.url}/dicomFile/{name}?download").content)
    )
    assert without_padding(stored) == without_padding(sent)  # the data set as sent; only the file meta was built
    png = httpx.get(f"{running.url}/dicomFile/{name}?png", timeout=60)
    assert png.status_code == 200, png.text
    assert png.content.startswith(b"\x89PNG")
    # several bundled files share a SOP Instance UID: leave none behind for the next syntax
    assert httpx.delete(f"{running.url}/dicomFile/{name}").status_code in (200, 204)


def test_an_identical_resend_is_a_success(server: tuple[RunningServer, int]) -> None:
    path = sample("CT_small.dcm")
    for _ in range(2):
        result = dcmtk("storescu", server[1], "-v", str(path))
        assert "Received Store Response (Success)" in result.stderr, result.stderr
    stored_name(server[0], str(pydicom.dcmread(path).SOPInstanceUID))  # still exactly one


def test_a_different_file_with_a_stored_uid_is_a_conflict(server: tuple[RunningServer, int]) -> None:
    port = server[1]
    first, second = sample("MR_small_implicit.dcm"), sample("MR_small_RLE.dcm")  # one SOP Instance UID
    assert dcmtk("storescu", port, str(first)).returncode == 0
    result = dcmtk("storescu", port, "-v", "-xr", str(second))
    assert "Received Store Response (Error: DataSetDoesNotMatchSOPClass)" in result.stderr, result.stderr
    name = stored_name(server[0], str(pydicom.dcmread(first).SOPInstanceUID))
    assert httpx.delete(f"{server[0].url}/dicomFile/{name}").status_code in (200, 204)


def test_findscu_at_each_level_with_wildcards(server: tuple[RunningServer, int], tmp_path: Path) -> None:
    port = server[1]
    ct = pydicom.dcmread(sample("CT_small.dcm"))
    assert dcmtk("storescu", port, str(sample("CT_small.dcm"))).returncode == 0
    queries = {
        ("-P", "PATIENT"): ["-k", "PatientName=compressedsamples^c*", "-k", "PatientID"],
        ("-S", "STUDY"): ["-k", "PatientName=*CT1", "-k", "StudyInstanceUID", "-k", "StudyDate=20040101-"],
        ("-S", "SERIES"): [
            "-k",
            f"StudyInstanceUID={ct.StudyInstanceUID}",
            "-k",
            "SeriesInstanceUID",
            "-k",
            "Modality=C?",
        ],
        ("-S", "IMAGE"): [
            "-k",
            f"StudyInstanceUID={ct.StudyInstanceUID}",
            "-k",
            "SOPInstanceUID",
            "-k",
            "SeriesInstanceUID",
        ],
    }
    expected = {
        "PATIENT": str(ct.PatientID),
        "STUDY": str(ct.StudyInstanceUID),
        "SERIES": str(ct.SeriesInstanceUID),
        "IMAGE": str(ct.SOPInstanceUID),
    }
    for (model, level), keys in queries.items():
        out = tmp_path / level
        out.mkdir()
        result = dcmtk("findscu", port, model, "-X", "-od", str(out), "-k", f"QueryRetrieveLevel={level}", *keys)
        assert result.returncode == 0, result.stderr
        answers = [pydicom.dcmread(p, force=True) for p in sorted(out.iterdir())]
        assert len(answers) == 1, (level, result.stderr)
        assert expected[level] in [str(v.value) for v in answers[0].iterall()], answers[0]
    nothing = tmp_path / "none"
    nothing.mkdir()
    result = dcmtk(
        "findscu", port, "-S", "-X", "-od", str(nothing), "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=nobody*"
    )
    assert result.returncode == 0 and not list(nothing.iterdir())


def test_getscu_of_a_study(server: tuple[RunningServer, int], tmp_path: Path) -> None:
    port = server[1]
    path = sample("MR_small_RLE.dcm")
    sent = pydicom.dcmread(path)
    assert dcmtk("storescu", port, "-xr", str(path)).returncode == 0
    result = dcmtk(
        "getscu",
        port,
        "-S",
        "-v",
        "-od",
        str(tmp_path),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={sent.StudyInstanceUID}",
    )
    assert result.returncode == 0, result.stderr
    received = [pydicom.dcmread(p) for p in tmp_path.iterdir()]
    assert [str(ds.SOPInstanceUID) for ds in received] == [str(sent.SOPInstanceUID)]
    # getscu accepts only uncompressed syntaxes by default: the RLE file is decoded for it
    assert received[0].file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    sent.decompress()
    assert received[0].PixelData == sent.PixelData


ADMIN = ("admin", "dcmtk-admin-password")
RADIOLOGY = ("radiology", "dcmtk-radiology-password")


def test_an_authenticated_session_is_in_the_audit_trail(tmp_path: Path) -> None:
    """With auth, a peer acts as its user: storescu, findscu and getscu each leave their records."""
    port = free_port()
    env = {
        "LIGHTBOX_AUTH_REQUIRED": "true",
        "LIGHTBOX_ADMIN_PASSWORD": ADMIN[1],
        "LIGHTBOX_DIMSE_PORT": str(port),
        "LIGHTBOX_DIMSE_PEERS": f"{AET}@127.0.0.1:{RADIOLOGY[0]},GHOST@127.0.0.1:nobody",
    }
    path = sample("MR_small_RLE.dcm")
    sent = pydicom.dcmread(path)
    with run_server(tmp_path, env=env) as server:
        assert dcmtk("echoscu", port, "-v", aet="GHOST").returncode != 0  # its user does not exist
        created = httpx.post(
            f"{server.url}/admin/users",
            json={"username": RADIOLOGY[0], "password": RADIOLOGY[1], "role": "user"},
            auth=ADMIN,
        )
        assert created.status_code == 201, created.text
        assert dcmtk("storescu", port, "-xr", str(path)).returncode == 0
        found = tmp_path / "found"
        found.mkdir()
        query = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={sent.StudyInstanceUID}"]
        assert dcmtk("findscu", port, "-S", "-X", "-od", str(found), *query).returncode == 0
        assert len(list(found.iterdir())) == 1
        got = tmp_path / "got"
        got.mkdir()
        assert dcmtk("getscu", port, "-S", "-od", str(got), *query).returncode == 0
        assert len(list(got.iterdir())) == 1
        listed = httpx.get(f"{server.url}/dicomFile", auth=RADIOLOGY).json()  # the peer's files are the user's
        assert listed["total"] == 1
        audit = httpx.get(f"{server.url}/admin/audit", params={"actor": RADIOLOGY[0]}, auth=ADMIN)
        assert audit.status_code == 200, audit.text
    records = audit.json()["data"][::-1]  # oldest first
    dimse = [(r["action"], r["outcome"], (r["detail"] or {}).get("dimse")) for r in records if r["detail"]]
    assert dimse[:3] == [
        ("upload", "success", "C-STORE"),
        ("list", "success", "C-FIND"),
        ("download", "success", "C-GET"),
    ]
    assert all(r["study_instance_uid"] == str(sent.StudyInstanceUID) for r in records[:3])
    assert records[0]["client"] == "127.0.0.1"
