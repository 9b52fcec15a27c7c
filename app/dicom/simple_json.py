"""The DICOM JSON model (PS3.18 F.2) of the common plain elements, without pydicom's per-element machinery.

Text VRs whose values are JSON Strings (PS3.18 F.2.3) and the binary-number VRs whose values are JSON
Numbers make up most of a header. For them this builds exactly what pydicom's
``DataElement.to_json_dict`` builds, at a fraction of the cost (it computes VM and emptiness several
times per element); anything else (PN, AT, SQ, binary, DS/IS, unusual values) returns ``None`` and the
caller keeps pydicom's conversion. ``tests/dicom/test_simple_json.py`` checks the equality on every
bundled pydicom file.
"""

from __future__ import annotations

import math
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue

#: Values are JSON Strings, one per value (PS3.18 F.2.3); PN (an object per value) is left to pydicom.
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI", "SH", "LO", "ST", "LT", "UT", "UC", "UR"})
#: Values are JSON Numbers (PS3.18 F.2.3): integers, and floats for FL/FD.
INTEGER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "US or SS"})
FLOAT_VRS = frozenset({"FL", "FD"})


def _text(vr: str, value: object) -> dict[str, Any] | None:
    if value is None or value == "":
        return {"vr": vr}
    if isinstance(value, str):
        return {"vr": vr, "Value": [value]}
    if isinstance(value, MultiValue) and all(isinstance(item, str) for item in value):
        return {"vr": vr, "Value": list(value)} if len(value) else {"vr": vr}
    return None


#: FL/FD may hold IEEE 754 NaN and infinities (CP-2352), which JSON Numbers cannot carry (RFC 8259 6):
#: they are written as these JSON Strings (the spelling dicom-rs uses), so every answer stays valid JSON.
NON_FINITE = {"nan": "NaN", "inf": "inf", "-inf": "-inf"}


def json_number(value: float) -> float | str:
    """A float as a JSON Number, or its string spelling when it is NaN or infinite."""
    return value if math.isfinite(value) else NON_FINITE[repr(value)]


def finite_json(model: Any) -> Any:
    """``model`` (a JSON-ready structure) with every non-finite float spelled as :data:`NON_FINITE` says."""
    if isinstance(model, float):
        return json_number(model)
    if isinstance(model, dict):
        return {key: finite_json(item) for key, item in model.items()}
    if isinstance(model, list):
        return [finite_json(item) for item in model]
    return model


def _numbers(vr: str, value: object, number_type: type[int] | type[float]) -> dict[str, Any] | None:
    convert = json_number if number_type is float else int
    if value is None:
        return {"vr": vr}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"vr": vr, "Value": [convert(value)]}
    if isinstance(value, MultiValue) and all(
        isinstance(item, (int, float)) and not isinstance(item, bool) for item in value
    ):
        return {"vr": vr, "Value": [convert(item) for item in value]} if len(value) else {"vr": vr}
    return None


def simple_element_json(elem: DataElement) -> dict[str, Any] | None:
    """``elem.to_json_dict(...)`` for plain text and number elements; ``None`` for every other kind."""
    vr = elem.VR
    if vr in TEXT_VRS:
        return _text(vr, elem.value)
    if vr in INTEGER_VRS:
        return _numbers(vr, elem.value, int)
    if vr in FLOAT_VRS:
        return _numbers(vr, elem.value, float)
    return None
