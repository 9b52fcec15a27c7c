"""Describe one data element: its keyword, VR, the original string form and the DICOM JSON form.

The string form (``header-attribute-value``) is the one existing clients parse:
``[`` + the values joined by one space + ``]``; strings lose their padding, DS/IS keep
the text written in the file, binary numbers are printed in shortest decimal form,
sequences and bulk values are summarised (``[2 items]``, ``[1024 bytes]``).
The JSON form follows PS3.18 Annex F (``Value`` array, ``InlineBinary`` for bulk VRs).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_deferred_data_element
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import IS, DSfloat, PersonName

from app.dicom.lenient_json import sequence_json
from app.dicom.simple_json import finite_json
from app.errors import ElementNotFound

#: VRs whose value is a byte string rather than text or numbers (PS3.5 §6.2).
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW", "US or SS or OW"})
#: VRs holding IEEE floats whose shortest form depends on their width.
FLOAT32_VRS = frozenset({"FL"})


@dataclass(frozen=True)
class Attribute:
    """One element as the tag lookup reports it."""

    keyword: str
    vr: str
    text: str
    value: Any


def _element_name(elem: DataElement) -> str:
    """The dictionary keyword; for private or unknown tags the descriptive name pydicom knows."""
    return elem.keyword or elem.name


def _number_text(value: Any, vr: str) -> str:
    """Numbers as written in the file (DS/IS) or in shortest decimal form (binary VRs)."""
    if isinstance(value, (DSfloat, IS)):
        return str(value)
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if vr in FLOAT32_VRS:
            return str(np.float32(value))
        return repr(value)
    return str(value)


def _value_text(value: Any, vr: str) -> str:
    if isinstance(value, BaseTag):
        return f"({value.group:04X},{value.element:04X})"
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, str):
        return value.rstrip(" \x00")
    if isinstance(value, (int, float)):
        return _number_text(value, vr)
    return str(value)


def _summary_text(elem: DataElement) -> str:
    """The bracketed, human-readable value of ``elem``."""
    value = elem.value
    if elem.VR == "SQ":
        count = len(value)
        return f"[{count} item{'s' if count != 1 else ''}]"
    if elem.VR in BINARY_VRS or isinstance(value, (bytes, bytearray)):
        return f"[{len(value) if value is not None else 0} bytes]"
    if value is None or value == "":
        return "[]"
    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    return "[" + " ".join(_value_text(item, elem.VR) for item in items) + "]"


def _too_large_to_inline(_elem: DataElement) -> str:
    """Nested bulk values over the inline limit are not served by ``?tag=``: an empty BulkDataURI says so."""
    return ""


def _json_value(elem: DataElement, inline_max: int) -> Any:
    """The element's PS3.18 Annex F value: the ``Value`` array, or ``{"InlineBinary": ...}``."""
    if elem.VR in BINARY_VRS:
        data = elem.value or b""
        if len(data) > inline_max:
            return None
        return {"InlineBinary": base64.b64encode(data).decode("ascii")}
    try:
        model = elem.to_json_dict(bulk_data_element_handler=_too_large_to_inline, bulk_data_threshold=inline_max)
    except Exception:  # pydicom fails on some malformed values (odd person names, wrong lengths in items)
        if elem.VR == "SQ":
            return sequence_json(elem, inline_max)
        return _fallback_json_value(elem)
    return finite_json(model.get("Value", []))  # FL/FD NaN and infinities as JSON Strings (CP-2352)


def _fallback_json_value(elem: DataElement) -> list[Any]:
    """Values as their text, person names in the Alphabetic group (PS3.18 F.2.2), for what pydicom refuses."""
    items = list(elem.value) if isinstance(elem.value, (MultiValue, list, tuple)) else [elem.value]
    if elem.VR == "PN":
        return [{"Alphabetic": str(item)} for item in items if str(item)]
    return [_value_text(item, elem.VR) for item in items if item not in (None, "")]


def _raw_length(dataset: Dataset, tag: BaseTag) -> tuple[str, int] | None:
    """VR and length of a still-deferred bulk element, read without loading its value."""
    raw = dataset.get_item(tag, keep_deferred=True)
    if isinstance(raw, RawDataElement) and raw.value is None and raw.length not in (0, 0xFFFFFFFF):
        vr = raw.VR or ""
        if vr in BINARY_VRS:
            return vr, raw.length
    return None


def describe(dataset: Dataset, tag: BaseTag, inline_max: int) -> Attribute:
    """Return the element ``tag`` of ``dataset`` (file meta included) as an :class:`Attribute`."""
    source = dataset.file_meta if tag.group == 0x0002 and getattr(dataset, "file_meta", None) else dataset
    if tag not in source:
        raise ElementNotFound(f"element {tag} is not present in this file")
    deferred = _raw_length(source, tag)
    if deferred is not None and deferred[1] > inline_max:
        vr, length = deferred
        elem = DataElement(tag, vr, b"")
        return Attribute(_element_name(elem), vr, f"[{length} bytes]", None)
    return describe_element(_element_or_un(source, tag, dataset), inline_max)


def _element_or_un(source: Dataset, tag: BaseTag, parsed: Dataset) -> DataElement:
    """``source[tag]``, or its bytes as ``UN`` when pydicom cannot convert the value (a US of 3 bytes:
    ``config.convert_wrong_length_to_UN`` semantics, without changing pydicom's process-wide setting).

    ``parsed`` is the dataset read from the file, which knows where to read a value left on disk."""
    try:
        return source[tag]
    except Exception:
        raw = source.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length:
            raw = read_deferred_data_element(
                getattr(parsed, "fileobj_type", open), getattr(parsed, "filename", None), None, raw
            )
        value = raw.value  # raw bytes; or a DataElement whose ambiguous VR could not be resolved (still bytes)
        return un_element(tag, value if isinstance(value, bytes) else b"")


def un_element(tag: BaseTag, data: bytes | None) -> DataElement:
    """An element of VR ``UN`` holding ``data`` as is (pydicom would swap UN for the dictionary VR and convert)."""
    elem = DataElement(tag, "OB", data)
    elem.VR = "UN"
    return elem


def describe_element(elem: DataElement, inline_max: int) -> Attribute:
    """Describe one already-loaded element (also used for elements rebuilt from the index's JSON)."""
    return Attribute(_element_name(elem), elem.VR, _summary_text(elem), _json_value(elem, inline_max))
