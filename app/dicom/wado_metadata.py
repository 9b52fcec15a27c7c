"""WADO-RS metadata (PS3.18 §10.4.1.1.2): stored headers as DICOM JSON with resolvable BulkDataURIs.

The index keeps each header with its bulk values (Pixel Data, binary values over 1 KiB) marked
by an empty ``BulkDataURI``. Top-level ones are given the URI of the instance's bulkdata
resource (``.../bulkdata/{tag}``, PS3.18 §10.4.1.1.5); nested ones cannot be addressed by tag
alone and are left out. The File Meta group is left out except the Transfer Syntax UID
(0002,0010), which viewers read to pick a decoder.
"""

from __future__ import annotations

from typing import Any

from app.dicom.header_json import Header

TRANSFER_SYNTAX_KEY = "00020010"


def _without_nested_bulk(entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("vr") != "SQ" or not entry.get("Value"):
        return entry
    items = [
        {key: _without_nested_bulk(value) for key, value in item.items() if "BulkDataURI" not in value}
        for item in entry["Value"]
    ]
    return {"vr": "SQ", "Value": items}


def metadata_json(header: Header, instance_url: str) -> dict[str, Any]:
    """One instance's metadata; ``instance_url`` is its WADO-RS URL."""
    out: dict[str, Any] = {}
    for key, entry in header.items():
        if key.startswith("0002") and key != TRANSFER_SYNTAX_KEY:
            continue
        if "BulkDataURI" in entry:
            out[key] = {"vr": entry["vr"], "BulkDataURI": f"{instance_url}/bulkdata/{key}"}
        else:
            out[key] = _without_nested_bulk(entry)
    return out
