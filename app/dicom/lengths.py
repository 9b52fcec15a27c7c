"""Elements whose length does not fit their VR (PS3.5 §6.2: US is 2 bytes a value, UL 4, FD 8 ...).

pydicom refuses to convert such a value (``BytesLengthException``) unless told to keep it as
``UN`` bytes (``config.convert_wrong_length_to_UN``). We keep the file and the element, show the
element as ``UN`` bytes (:mod:`app.dicom.header_json`, :mod:`app.dicom.attributes`), and
report it here, one warning per element: never a refusal of the whole file.
"""

from __future__ import annotations

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

#: Bytes per value of the VRs pydicom unpacks as fixed-size binary numbers.
VALUE_SIZE = {"US": 2, "SS": 2, "US or SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "SV": 8, "UV": 8}


def _vr(raw: RawDataElement) -> str | None:
    if raw.VR is not None:
        return str(raw.VR)
    try:
        return dictionary_VR(raw.tag)
    except KeyError:
        return None


def wrong_length(raw: RawDataElement) -> int | None:
    """The VR's bytes per value when ``raw``'s length is not a whole number of them, else None."""
    size = VALUE_SIZE.get(_vr(raw) or "")
    if size is None or raw.length in (0, 0xFFFFFFFF) or raw.length % size == 0:
        return None
    return size


def wrong_lengths(dataset: Dataset) -> list[str]:
    """One warning per top-level element (File Meta included) whose length is not a whole number of values."""
    found = []
    meta = getattr(dataset, "file_meta", None)
    for source in (meta, dataset):
        if source is None:
            continue
        wrong = []
        for raw in source.values():  # unconverted, as stored (iterating a Dataset would convert every value)
            if isinstance(raw, RawDataElement) and wrong_length(raw) is not None:
                wrong.append(raw)
        for raw in sorted(wrong, key=lambda raw: int(raw.tag)):  # in tag order; only the few found are sorted
            name = keyword_for_tag(raw.tag) or "a private element"
            found.append(
                f"element {Tag(raw.tag)} {name} holds {raw.length} bytes, not a multiple of {wrong_length(raw)} "
                f"({_vr(raw)}): it is kept and shown as UN bytes"
            )
    return found
