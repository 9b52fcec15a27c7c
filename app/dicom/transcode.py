"""Re-encode a stored instance in Explicit VR Little Endian, the default of WADO-RS retrieve (PS3.18 §8.7.3.5.2).

Native encodings (Implicit VR, Explicit VR Big Endian, Deflated) are re-written with their pixel
values unchanged (big-endian words swapped). Compressed Pixel Data is decoded (YBR colour made RGB,
as PS3.5 8.2 requires once the data is no longer compressed) and the file meta updated. The stored
file itself is never changed. Compressed input runs in the decode sandbox: its decoders are native code.

A DIMSE retrieve (C-GET/C-MOVE, PS3.4 C.4.3.3) sends the stored bytes when the receiver accepted
their transfer syntax (any uncompressed syntax stands for any other: pydicom re-encodes on sending),
and this re-encoding otherwise (:func:`needs_decoding`).
"""

from __future__ import annotations

from collections.abc import Set
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRBigEndian, ExplicitVRLittleEndian

from app.dicom.pixels import PIXEL_DATA_TAGS, transfer_syntax
from app.errors import NotRenderable, UnsupportedEncoding

EXPLICIT_LITTLE = str(ExplicitVRLittleEndian)
UNCOMPRESSED = frozenset({"1.2.840.10008.1.2", EXPLICIT_LITTLE, "1.2.840.10008.1.2.2"})  # PS3.5 A.1, A.2, A.3


def needs_decoding(stored: str, accepted: Set[str]) -> bool:
    """Whether a file stored in ``stored`` must be re-encoded (:func:`to_explicit_little`) for a receiver
    that accepted ``accepted``; UnsupportedEncoding when it accepted neither that nor an uncompressed syntax."""
    if stored in accepted or (stored in UNCOMPRESSED and accepted & UNCOMPRESSED):
        return False
    if not accepted & UNCOMPRESSED:
        raise UnsupportedEncoding(f"the receiver accepts neither {stored} nor an uncompressed transfer syntax")
    return True


def to_explicit_little(path: Path, max_pixels: int) -> bytes:
    """The instance at ``path`` as a Part 10 file in Explicit VR Little Endian."""
    ds = dcmread(path, force=True)
    syntax = transfer_syntax(ds)
    has_pixels = any(tag in ds for tag in PIXEL_DATA_TAGS)
    if has_pixels and (syntax.is_compressed or syntax == ExplicitVRBigEndian) and 0x7FE00010 in ds:
        from app.dicom.pixels import geometry  # the pixel budget guards the decoding below

        geometry(ds, max_pixels)
        try:
            if syntax.is_compressed:
                ds.decompress(generate_instance_uid=False)  # the same instance, only re-encoded
            else:
                array = ds.pixel_array
                if int(ds.get("BitsAllocated", 8)) > 8:
                    ds.PixelData = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # decoders raise many types on corrupt streams
            raise NotRenderable(f"the pixel data could not be decoded ({syntax.name}): {type(exc).__name__}") from None
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta.TransferSyntaxUID = UID(EXPLICIT_LITTLE)
    meta.MediaStorageSOPClassUID = meta.get("MediaStorageSOPClassUID") or ds.get("SOPClassUID")
    meta.MediaStorageSOPInstanceUID = meta.get("MediaStorageSOPInstanceUID") or ds.get("SOPInstanceUID")
    meta.ImplementationClassUID = meta.get("ImplementationClassUID") or PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    buffer = BytesIO()
    try:
        dcmwrite(buffer, ds, implicit_vr=False, little_endian=True, enforce_file_format=True)
    except (ValueError, TypeError, OverflowError, AttributeError, KeyError) as exc:  # values pydicom cannot re-encode
        raise NotRenderable(
            f"the instance cannot be re-encoded in Explicit VR Little Endian ({type(exc).__name__})"
        ) from None
    return buffer.getvalue()
