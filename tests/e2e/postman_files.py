"""The files the Postman collection uploads, written from pydicom's test data (no patient data).

``python -m tests.e2e.postman_files DIR`` writes them for a manual Newman or Postman run
(README, "Postman collection"); tests/e2e/test_postman.py writes them for its own run.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

from pydicom.data import get_testdata_file

# name in the collection -> pydicom test file
DICOM_FILES = {
    "ct.dcm": "CT_small.dcm",  # 128 x 128 CT, Explicit VR Little Endian
    "multiframe.dcm": "emri_small.dcm",  # 10 frames of 64 x 64 MR
    "compressed.dcm": "SC_rgb_rle.dcm",  # RLE Lossless colour: decoded in the sandbox
    "mr.dcm": "MR_small.dcm",
}
ZIP_MEMBERS = {"study/nm.dcm": "JPEG2000.dcm", "study/us.dcm": "US1_J2KR.dcm"}
# A STOW-RS body (PS3.18 §10.5.1.1): Postman sends a file as the body, not a multipart/related it builds.
STOW_FILE, STOW_SOURCE, STOW_BOUNDARY = "stow.multipart", "SC_rgb_small_odd.dcm", "lightbox-postman-stow"


def _test_file(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is not installed (pip install pydicom-data)")
    return Path(path)


def write_files(folder: Path) -> Path:
    """Write every file the collection sends into ``folder`` (Newman's ``--working-dir``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in DICOM_FILES.items():
        shutil.copyfile(_test_file(source), folder / name)
    (folder / "notes.txt").write_text("These are notes, not a DICOM file.\n")
    with zipfile.ZipFile(folder / "study.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for member, source in ZIP_MEMBERS.items():
            archive.write(_test_file(source), member)
    part = _test_file(STOW_SOURCE).read_bytes()
    head = f"--{STOW_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    (folder / STOW_FILE).write_bytes(head + part + f"\r\n--{STOW_BOUNDARY}--\r\n".encode())
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.e2e.postman_files DIR")
    print(write_files(Path(sys.argv[1])))
