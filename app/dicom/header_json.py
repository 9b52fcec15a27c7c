"""An instance's header in the DICOM JSON model (PS3.18 Annex F), built once at upload and kept in the index.

What is stored, keyed ``"GGGGEEEE"`` (PS3.18 F.2.1), File Meta group (PS3.10 §7.1) included:

- DS and IS values as JSON Strings exactly as written in the file (PS3.18 F.2.3, allowed since
  CP-1861), so the original text of a decimal survives and ``?tag=`` can print it unchanged;
- sequences as pydicom's JSON model, nested binary values over the inline limit as an empty
  ``BulkDataURI`` (as :mod:`app.dicom.attributes` answers them);
- binary values up to :data:`HEADER_INLINE_BYTES` as ``InlineBinary``;
- Pixel Data (7FE0,0010), Float/Double Float Pixel Data, larger binary values, values pydicom left on
  disk while parsing and values that cannot be encoded: ``{"vr": ..., "BulkDataURI": ""}``. Their
  bytes stay only in the file, and a lookup of such an element reads the file.
"""

from __future__ import annotations

import base64
from collections.abc import MutableSequence
from typing import Any

from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import AMBIGUOUS_VR

from app.dicom.attributes import BINARY_VRS, Attribute, describe_element, un_element
from app.dicom.lengths import wrong_length
from app.dicom.lenient_json import sequence_json
from app.dicom.raw_json import ascii_text, pydicom_defaults, raw_json
from app.dicom.simple_json import finite_json, simple_element_json
from app.errors import ElementNotFound

#: Pixel Data, Float Pixel Data, Double Float Pixel Data (PS3.3 C.7.6.3): never copied into the index.
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
#: Binary values up to this size are kept inline in the stored header.
HEADER_INLINE_BYTES = 1024
NUMBER_STRING_VRS = frozenset({"DS", "IS"})

CHARSET_TAG = 0x00080005  # Specific Character Set (PS3.3 C.12.1.1.2), itself in the default repertoire

Header = dict[str, Any]
Charset = str | MutableSequence[str]


def _no_bulk_uri(_elem: DataElement) -> str:
    return ""


def _bulk(vr: str | None, tag: BaseTag) -> dict[str, Any]:
    if not vr:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
    return {"vr": vr.split(" ")[0], "BulkDataURI": ""}


def _number_strings(elem: DataElement) -> dict[str, Any]:
    """DS/IS as JSON Strings with the text as written (``str`` of pydicom's DSfloat/IS keeps it)."""
    value = elem.value
    if value is None or value == "":
        return {"vr": elem.VR}
    items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    return {"vr": elem.VR, "Value": [None if item is None or item == "" else str(item) for item in items]}


def _converted(source: Dataset, tag: BaseTag, raw: DataElement | RawDataElement, charset: Charset) -> DataElement:
    """``source[tag]`` without its per-element costs: the character set is looked up once per data set
    and the value is not stored back. Sequences and ambiguous VRs (PS3.5 Annex A.1, resolved from Pixel
    Representation and others) take ``source[tag]`` itself."""
    if isinstance(raw, RawDataElement):
        elem = convert_raw_data_element(raw, encoding=default_encoding if tag == CHARSET_TAG else charset, ds=source)
        if elem.VR != "SQ" and elem.VR not in AMBIGUOUS_VR:
            return elem
    return source[tag]


def _element_json(
    source: Dataset,
    tag: BaseTag,
    raw: DataElement | RawDataElement,
    inline_max: int,
    charset: Charset,
    fast: bool,
    ascii_charset: bool,
) -> dict[str, Any]:
    """``raw``: ``source.get_item(tag, keep_deferred=True)``; ``fast``: common elements are built from
    their bytes (:mod:`app.dicom.raw_json`); ``ascii_charset``: the data set's character set reads
    ASCII bytes as ASCII."""
    if isinstance(raw, RawDataElement) and raw.value is None and raw.length not in (0, 0xFFFFFFFF):
        if wrong_length(raw):
            return _bulk("UN", tag)
        return _bulk(raw.VR, tag)  # left on disk by the parser (defer_size): a bulk value
    if tag in PIXEL_TAGS:
        return _bulk(raw.VR, tag)
    if fast and isinstance(raw, RawDataElement):
        built = raw_json(raw, ascii_charset or int(tag) == CHARSET_TAG)  # int: BaseTag.__eq__ is Python
        if built is not None:
            return built
    try:
        elem = _converted(source, tag, raw, charset)
    except Exception:  # a value pydicom cannot convert: kept as UN bytes (convert_wrong_length_to_UN)
        return _unconverted(raw, tag)
    try:
        if elem.VR in NUMBER_STRING_VRS:
            return _number_strings(elem)
        if elem.VR in BINARY_VRS:
            data = elem.value or b""
            if len(data) > HEADER_INLINE_BYTES:
                return _bulk(elem.VR, tag)
            if not data:
                return {"vr": elem.VR}
            return {"vr": elem.VR, "InlineBinary": base64.b64encode(data).decode("ascii")}
        simple = simple_element_json(elem)
        if simple is not None:
            return simple
        model: dict[str, Any] = finite_json(
            elem.to_json_dict(bulk_data_element_handler=_no_bulk_uri, bulk_data_threshold=inline_max)
        )  # FL/FD NaN and infinities inside sequences too
        return model
    except Exception:  # a nested value pydicom cannot convert: that one as UN bytes, the rest as they are
        if elem.VR == "SQ":
            return {"vr": "SQ", "Value": sequence_json(elem, inline_max)}
        return _unconverted(raw, tag)


def _unconverted(raw: DataElement | RawDataElement, tag: BaseTag) -> dict[str, Any]:
    """A value pydicom cannot convert (a US of 3 bytes, PS3.5 §6.2) as the bytes it is, VR ``UN``."""
    data = raw.value if isinstance(raw, RawDataElement) else None
    if not isinstance(data, bytes) or len(data) > HEADER_INLINE_BYTES:
        return _bulk("UN" if isinstance(raw, RawDataElement) else raw.VR, tag)
    if not data:
        return {"vr": "UN"}
    return {"vr": "UN", "InlineBinary": base64.b64encode(data).decode("ascii")}


def _tag_order(item: tuple[BaseTag, object]) -> int:
    return int(item[0])


def header_json(dataset: Dataset, inline_max: int) -> Header:
    """Every element of the file meta and the data set, in the DICOM JSON model described above."""
    header: Header = {}
    meta = getattr(dataset, "file_meta", None)
    fast = pydicom_defaults()
    for source in (meta, dataset):
        if source is None:
            continue
        charset = source.original_character_set or source._character_set  # as Dataset.__getitem__ chooses
        ascii_charset = fast and ascii_text(charset)
        # the elements as stored, unconverted (what get_item(keep_deferred=True) returns), ordered by their
        # tags as plain ints (BaseTag.__lt__ is Python): ~0.15 ms of a small CT header
        for tag, raw in sorted(source.items(), key=_tag_order):
            header[f"{tag:08X}"] = _element_json(source, tag, raw, inline_max, charset, fast, ascii_charset)
    return header


def _private_creator(header: Header, tag: BaseTag) -> str | None:
    """The creator of a private element's block (PS3.5 §7.8.1): element (gggg,00xx) for (gggg,xxyy)."""
    if not tag.is_private or tag.element < 0x1000:
        return None
    creator = header.get(f"{tag.group:04X}00{tag.element >> 8:02X}", {}).get("Value")
    return str(creator[0]) if creator else None


def describe_json(header: Header, tag: BaseTag, inline_max: int) -> Attribute | None:
    """The element ``tag`` as :func:`app.dicom.attributes.describe` reports it, from the stored header.

    ``None`` when only the file holds the value (a bulk value), so the caller reads the file.
    """
    entry = header.get(f"{tag:08X}")
    if entry is None:
        raise ElementNotFound(f"element {tag} is not present in this file")
    if "BulkDataURI" in entry:
        return None
    vr: str = entry["vr"]
    value = entry.get("Value")
    if vr == "SQ":
        # pydicom names a private sequence without its creator ("Private tag data"), as the file path does
        elem = DataElement(tag, vr, [])
        items = value or []
        described = describe_element(elem, inline_max)
        text = f"[{len(items)} item{'s' if len(items) != 1 else ''}]"
        return Attribute(described.keyword, vr, text, items)
    try:
        if vr in NUMBER_STRING_VRS:
            elem = DataElement(tag, vr, "\\".join("" if v is None else v for v in value) if value else None)
        elif vr in BINARY_VRS:
            data = base64.b64decode(entry["InlineBinary"]) if "InlineBinary" in entry else None
            elem = un_element(tag, data) if vr == "UN" else DataElement(tag, vr, data)
        elif value is None:
            elem = DataElement(tag, vr, None)
        else:
            elem = DataElement.from_json(Dataset, f"{tag:08X}", vr, value, "Value")
        elem.private_creator = _private_creator(header, tag)
        return describe_element(elem, inline_max)
    except Exception:  # a malformed value: answer it exactly as the file path does
        return None


def public_metadata(header: Header) -> Header:
    """The stored header as ``?metadata`` serves it: bulk values (kept only in the file) left out."""
    return {key: entry for key, entry in header.items() if "BulkDataURI" not in entry}
