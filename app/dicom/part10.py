"""A data set received over the network, made a Part 10 file (PS3.10 7.1) without re-encoding it.

The data set bytes are kept exactly as the sender encoded them in the negotiated transfer syntax
(deflated ones stay deflated); only the preamble and the File Meta Information group (0002) are
built, from the association: Media Storage SOP Class/Instance UID (0002,0002)/(0002,0003) from the
C-STORE request's Affected SOP Class/Instance UID, Transfer Syntax UID (0002,0010) from the
presentation context, Source Application Entity Title (0002,0016) from the calling AE (PS3.10 7.1).
"""

from __future__ import annotations

from io import BytesIO

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

PREAMBLE = b"\x00" * 128 + b"DICM"  # PS3.10 7.1: 128-byte preamble and the DICM prefix
IMPLEMENTATION_VERSION = "LIGHTBOX_1"  # (0002,0013), at most 16 characters


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str, source_ae: str) -> bytes:
    """The encoded File Meta Information group, preceded by the preamble and prefix."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    if source_ae.strip():
        meta.SourceApplicationEntityTitle = source_ae.strip()
    buffer = BytesIO()
    buffer.write(PREAMBLE)
    write_file_meta_info(buffer, meta, enforce_standard=True)  # type: ignore[arg-type]
    return buffer.getvalue()
