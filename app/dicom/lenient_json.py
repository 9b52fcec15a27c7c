"""Sequences in the DICOM JSON model (PS3.18 F.2) even when some nested value cannot be converted.

pydicom's ``to_json_dict`` fails on the whole sequence when one nested element cannot be
converted (a UL of 6 bytes in a directory record, an item tag where an element belongs). Such
an element is given as the bytes it is, VR ``UN`` (``config.convert_wrong_length_to_UN``
semantics), and every other element of every item keeps its value.
"""

from __future__ import annotations

import base64
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset


def _no_bulk_uri(_elem: DataElement) -> str:
    return ""


def _as_un(value: object, inline_max: int) -> dict[str, Any]:
    data = value if isinstance(value, bytes) else b""
    if not data:
        return {"vr": "UN"}
    if len(data) > inline_max:
        return {"vr": "UN", "BulkDataURI": ""}
    return {"vr": "UN", "InlineBinary": base64.b64encode(data).decode("ascii")}


def element_json(item: Dataset, tag: int, inline_max: int) -> dict[str, Any]:
    """One element of ``item`` in the JSON model; ``UN`` bytes when pydicom cannot convert it."""
    try:
        elem = item[tag]
    except Exception:  # conversion failed: the raw value is still there
        return _as_un(item.get_item(tag, keep_deferred=True).value, inline_max)
    if elem.VR == "SQ":
        return {"vr": "SQ", "Value": sequence_json(elem, inline_max)}
    try:
        model: dict[str, Any] = elem.to_json_dict(
            bulk_data_element_handler=_no_bulk_uri, bulk_data_threshold=inline_max
        )
    except Exception:
        return _as_un(elem.value, inline_max)
    return model


def sequence_json(elem: DataElement, inline_max: int) -> list[dict[str, Any]]:
    """The items of a sequence element, each element converted on its own."""
    return [{f"{tag:08X}": element_json(item, tag, inline_max) for tag in sorted(item.keys())} for item in elem.value]
