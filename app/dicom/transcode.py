"""A stored data set in a transfer syntax the receiver accepted (PS3.4 C.4.3.3, PS3.5 10).

Stored bytes are sent as they are when the receiver accepted their transfer syntax (any
uncompressed syntax stands for any other: they only differ in encoding); a compressed file whose
syntax was not accepted is decoded to Explicit VR Little Endian (1.2.840.10008.1.2.1) when that, or
another uncompressed syntax, was accepted.
"""

from __future__ import annotations

from collections.abc import Set
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from app.errors import UnsupportedEncoding

UNCOMPRESSED = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"})


def for_receiver(path: Path, accepted: Set[str]) -> Dataset:
    """The file at ``path`` ready to send to a receiver that accepted ``accepted`` for its SOP class."""
    dataset = dcmread(path)
    stored = str(dataset.file_meta.TransferSyntaxUID)
    if stored in accepted or (stored in UNCOMPRESSED and accepted & UNCOMPRESSED):
        return dataset
    if not accepted & UNCOMPRESSED:
        raise UnsupportedEncoding(f"the receiver accepts neither {stored} nor an uncompressed transfer syntax")
    if UID(stored).is_deflated:
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # already inflated when read
        return dataset
    try:
        dataset.decompress(generate_instance_uid=False)  # to Explicit VR Little Endian; the same instance
    except Exception as exc:  # pydicom raises several kinds for undecodable pixel data
        raise UnsupportedEncoding(f"the stored pixel data ({stored}) could not be decoded for the receiver") from exc
    return dataset
