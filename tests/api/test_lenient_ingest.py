"""Property tests of lenient ingest (issue 9): each generated class of non-conformant file gets its expected answer.

- non-conformant UIDs: kept as the identifier they are (trailing NUL/space padding stripped), with a
  warning; missing/empty (SOP Instance UID), several values, control characters, too long: 400;
- VR encodings that differ from the transfer syntax (whole data set, sequence items, single
  elements, the File Meta group): read as found, values intact, a warning naming it;
- values whose length is not a whole number of their VR's values: the file is kept, the element
  answers as UN bytes, a warning names it; right lengths answer as before, without warnings.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydicom.tag import Tag
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

from tests.api.encodings import EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, SECONDARY_CAPTURE, Encoder, meta, part10

pytestmark = pytest.mark.anyio
EXAMPLES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

SOP_CLASS, SOP_INSTANCE, STUDY, SERIES = 0x00080016, 0x00080018, 0x0020000D, 0x0020000E
PATIENT_ID, REFERENCED_IMAGES = 0x00100020, 0x00081140
REFERENCED_CLASS, REFERENCED_INSTANCE = 0x00081150, 0x00081155
UID_TAGS = {SOP_INSTANCE: "SOP Instance UID", STUDY: "Study Instance UID", SERIES: "Series Instance UID"}
ROW_KEYS = {SOP_INSTANCE: "sop-instance-uid", STUDY: "study-instance-uid", SERIES: "series-instance-uid"}


async def post(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await client.post("/upload", files={"file": ("generated.dcm", data)})


async def tag_value(client: httpx.AsyncClient, name: str, tag: int) -> dict[str, Any]:
    response = await client.get(f"/dicomFile/{name}", params={"tag": f"({tag >> 16:04X},{tag & 0xFFFF:04X})"})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def identity(encoder: Encoder, uids: dict[int, bytes]) -> bytes:
    """SOP Class, then the UIDs given, in tag order (values as raw bytes, padded to even length with NUL)."""
    out = encoder.element(SOP_CLASS, "UI", SECONDARY_CAPTURE.encode())
    for tag in sorted(uids):
        value = uids[tag]
        out += encoder.element(tag, "UI", value + b"\x00" * (len(value) % 2), pad=False)
    return out


# -- UIDs --------------------------------------------------------------------------------------------------

CONTROL = [*range(0x00, 0x20), 0x7F]
UID_KINDS = ["conformant", "hex", "leading-zero", "spaces", "nuls", "long", "too-long", "control", "backslash", "empty"]


def uid_variant(kind: str, base: str, number: int) -> tuple[bytes, str | None, str | None]:
    """(value as written, the identifier expected or None when refused, the warning or refusal expected)."""
    if kind == "conformant":
        return base.encode(), base, None
    if kind == "hex":
        digest = hashlib.sha256(base.encode()).hexdigest()
        return digest.encode(), digest, "digits and dots"
    if kind == "leading-zero":
        uid = f"{base}.0{number % 100}"
        return uid.encode(), uid, "leading zero"
    if kind == "spaces":
        return base.encode() + b" " * (1 + number % 4), base, "padded with spaces"
    if kind == "nuls":
        return base.encode() + b"\x00" * (1 + number % 4), base, None
    if kind == "long":
        uid = (base + ".1" * 120)[: 65 + number % 190]
        uid += "1" if uid.endswith(".") else ""  # 65 to 255 characters, components intact
        return uid.encode(), uid, "characters long"
    if kind == "too-long":
        return (base + ".1" * 200)[: 257 + number % 100].encode(), None, "longer than the 256"
    if kind == "control":
        at = number % len(base)
        return base[:at].encode() + bytes([CONTROL[number % len(CONTROL)]]) + base[at:].encode(), None, "control"
    if kind == "backslash":
        return f"{base}\\{generate_uid()}".encode(), None, "several values"
    return b" " * (number % 3), "", None  # empty


@EXAMPLES
@given(kind=st.sampled_from(UID_KINDS), target=st.sampled_from(sorted(UID_TAGS)), number=st.integers(0, 10_000))
async def test_uid_variants(client: httpx.AsyncClient, kind: str, target: int, number: int) -> None:
    uids = {tag: generate_uid().encode() for tag in UID_TAGS}
    written, expected, fragment = uid_variant(kind, generate_uid(), number)
    uids[target] = written
    response = await post(client, part10(meta("", ExplicitVRLittleEndian), identity(EXPLICIT_LE, uids)))
    body = response.json()
    if expected is None or (expected == "" and target == SOP_INSTANCE):
        assert response.status_code == 400, body
        assert UID_TAGS[target] in body["error"] or "SOP Instance UID" in body["error"]
        assert fragment is None or fragment in body["error"]
        return
    assert response.status_code == 201, body
    if fragment is None:
        assert "warnings" not in body  # conformant files answer exactly as before
    else:
        assert any(fragment in w and UID_TAGS[target] in w for w in body["warnings"]), body
    row = (await client.get("/dicomFile", params={"limit": 1})).json()["data"][0]
    assert row["name"] == body["name"]
    assert row[ROW_KEYS[target]] == expected  # indexed as the identifier it is
    if expected:
        assert (await tag_value(client, body["name"], target))["value"] == [expected]
        keyword = {SOP_INSTANCE: "SOPInstanceUID", STUDY: "StudyInstanceUID", SERIES: "SeriesInstanceUID"}[target]
        found = (await client.get("/dicomFile", params={keyword: expected})).json()  # an exact, opaque match
        assert [r["name"] for r in found["data"]] == [body["name"]]


# -- VR encodings --------------------------------------------------------------------------------------------

ENCODING_KINDS = [
    "implicit-under-explicit-syntax",
    "explicit-under-implicit-syntax",
    "implicit-items",
    "element-without-vr",
    "implicit-meta",
    "no-transfer-syntax",
    "wrong-group-length",
    "bare-data-set",
    "bare-big-endian",
]
EXPLICIT_SYNTAXES = [ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLosslessSV1, RLELossless]
WARNING_FOR = {
    "implicit-under-explicit-syntax": "says Explicit VR but the data set is encoded in Implicit VR",
    "explicit-under-implicit-syntax": "says Implicit VR but the data set is encoded in Explicit VR",
    "implicit-items": "sequence item(s)",
    "element-without-vr": "carry no VR",
    "implicit-meta": "File Meta Information is not Explicit VR",
    "no-transfer-syntax": "no Transfer Syntax UID",
    "wrong-group-length": "Group Length (0002,0000) does not match",
}


def data_set(
    encoder: Encoder, item_encoder: Encoder, sop: str, patient_id: str, refs: list[str], undefined: bool
) -> bytes:
    """SOP identity, a Referenced Image Sequence (items in ``item_encoder``), then Patient ID after it."""
    items = [
        item_encoder.element(REFERENCED_CLASS, "UI", SECONDARY_CAPTURE.encode())
        + item_encoder.element(REFERENCED_INSTANCE, "UI", ref.encode())
        for ref in refs
    ]
    return (
        identity(encoder, {SOP_INSTANCE: sop.encode()})
        + encoder.sequence(REFERENCED_IMAGES, items, undefined)
        + encoder.element(PATIENT_ID, "LO", patient_id.encode())
    )


def encoded(kind: str, syntax: str, sop: str, patient_id: str, refs: list[str], undefined: bool) -> bytes:
    if kind == "implicit-under-explicit-syntax":
        return part10(meta(sop, syntax), data_set(IMPLICIT_LE, IMPLICIT_LE, sop, patient_id, refs, undefined))
    if kind == "explicit-under-implicit-syntax":
        return part10(
            meta(sop, ImplicitVRLittleEndian), data_set(EXPLICIT_LE, EXPLICIT_LE, sop, patient_id, refs, undefined)
        )
    if kind == "implicit-items":
        return part10(meta(sop, syntax), data_set(EXPLICIT_LE, IMPLICIT_LE, sop, patient_id, refs, undefined))
    if kind == "element-without-vr":  # Patient ID written in Implicit VR inside an Explicit VR data set
        head = identity(EXPLICIT_LE, {SOP_INSTANCE: sop.encode()})
        return part10(meta(sop, syntax), head + IMPLICIT_LE.element(PATIENT_ID, "LO", patient_id.encode()))
    body = data_set(EXPLICIT_LE, EXPLICIT_LE, sop, patient_id, refs, undefined)
    if kind == "implicit-meta":
        return part10(meta(sop, syntax, IMPLICIT_LE), body)
    if kind == "no-transfer-syntax":
        return part10(meta(sop, None), body)
    if kind == "wrong-group-length":
        return part10(meta(sop, syntax, group_length_error=len(refs) * 2 + 2), body)
    if kind == "bare-data-set":
        return data_set(
            IMPLICIT_LE if undefined else EXPLICIT_LE,
            IMPLICIT_LE if undefined else EXPLICIT_LE,
            sop,
            patient_id,
            refs,
            undefined,
        )
    # bare Explicit VR Big Endian (retired, PS3.5 A.3): no sequences, pydicom detects the byte order
    return identity(EXPLICIT_BE, {SOP_INSTANCE: sop.encode()}) + EXPLICIT_BE.element(
        PATIENT_ID, "LO", patient_id.encode()
    )


@EXAMPLES
@given(
    kind=st.sampled_from(ENCODING_KINDS),
    syntax=st.sampled_from(EXPLICIT_SYNTAXES),
    patient_id=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=16),
    ref_count=st.integers(1, 3),
    undefined=st.booleans(),
)
async def test_encodings_are_read_as_found(
    client: httpx.AsyncClient, kind: str, syntax: str, patient_id: str, ref_count: int, undefined: bool
) -> None:
    sop, refs = generate_uid(), [str(generate_uid()) for _ in range(ref_count)]
    response = await post(client, encoded(kind, syntax, sop, patient_id, refs, undefined))
    body = response.json()
    assert response.status_code == 201, body
    if kind in WARNING_FOR:
        assert any(WARNING_FOR[kind] in w for w in body["warnings"]), body
    else:
        assert "warnings" not in body, body
    name = body["name"]
    assert (await tag_value(client, name, SOP_INSTANCE))["value"] == [sop]
    assert (await tag_value(client, name, PATIENT_ID))["value"] == [patient_id]
    if kind not in ("element-without-vr", "bare-big-endian"):
        items = (await tag_value(client, name, REFERENCED_IMAGES))["value"]
        assert [item[f"{REFERENCED_INSTANCE:08X}"]["Value"] for item in items] == [[ref] for ref in refs]


# -- wrong lengths -------------------------------------------------------------------------------------------

#: (tag, VR, bytes per value): binary-number attributes of the standard dictionary.
SIZED = [
    (0x00280010, "US", 2),  # Rows
    (0x00280011, "US", 2),  # Columns
    (0x00280106, "US or SS", 2),  # Smallest Image Pixel Value
    (0x00186016, "UL", 4),  # Region Flags
    (0x00186020, "SL", 4),  # Reference Pixel X0
    (0x00189087, "FD", 8),  # Diffusion b-value
]


@EXAMPLES
@example(sized=SIZED[2], explicit=False, value=b"\x01" * 1025)  # left on disk by the parser, ambiguous VR (found)
@example(sized=SIZED[0], explicit=True, value=b"\x01\x02\x03")
@given(
    sized=st.sampled_from(SIZED),
    explicit=st.booleans(),
    value=st.integers(1, 2100).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
)
async def test_wrong_length_values_are_kept_as_un(
    client: httpx.AsyncClient, sized: tuple[int, str, int], explicit: bool, value: bytes
) -> None:
    tag, vr, size = sized
    encoder = EXPLICIT_LE if explicit else IMPLICIT_LE
    syntax = ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian
    sop = generate_uid()
    element = encoder.element(tag, vr.split(" ")[0], value, pad=False)
    data = part10(meta(sop, syntax), identity(encoder, {SOP_INSTANCE: sop.encode()}) + element)
    response = await post(client, data)
    body = response.json()
    assert response.status_code == 201, body
    answer = await tag_value(client, body["name"], tag)
    if len(value) % size:
        assert any(str(Tag(tag)) in w and "UN" in w for w in body["warnings"]), body
        assert answer["vr"] == "UN"
        assert answer["header-attribute-value"] == f"[{len(value)} bytes]"
        assert answer["value"] == {"InlineBinary": base64.b64encode(value).decode()}
    else:
        assert "warnings" not in body, body
        assert answer["vr"] in vr.split(" or ")
        assert len(answer["value"]) == len(value) // size


async def test_odd_length_padding_and_wrong_meta_length_together(client: httpx.AsyncClient) -> None:
    """One file with several departures at once: every one is named, the file is kept."""
    sop = generate_uid()
    odd_text = EXPLICIT_LE.element(PATIENT_ID, "LO", b"ODD", pad=False)  # odd length, no padding (PS3.5 §7.1.1)
    rows = EXPLICIT_LE.element(0x00280010, "US", b"\x01\x02\x03", pad=False)
    data = part10(
        meta(sop, ExplicitVRLittleEndian, group_length_error=-6),
        identity(EXPLICIT_LE, {SOP_INSTANCE: sop.encode()}) + odd_text + rows,
    )
    response = await post(client, data)
    assert response.status_code == 201, response.text
    warnings = response.json()["warnings"]
    assert len(warnings) == 2 and "Group Length" in warnings[0] and "(0028,0010) Rows" in warnings[1]
    assert (await tag_value(client, response.json()["name"], PATIENT_ID))["value"] == ["ODD"]


async def test_bulk_answer_carries_warnings_per_file(client: httpx.AsyncClient) -> None:
    sop = generate_uid()
    hexed = hashlib.sha256(sop.encode()).hexdigest().encode()
    odd = part10(meta("", ExplicitVRLittleEndian), identity(EXPLICIT_LE, {SOP_INSTANCE: hexed}))
    plain_sop = generate_uid().encode()
    plain = part10(meta("", ExplicitVRLittleEndian), identity(EXPLICIT_LE, {SOP_INSTANCE: plain_sop}))
    response = await client.post("/upload", files=[("file", ("odd.dcm", odd)), ("file", ("plain.dcm", plain))])
    assert response.status_code == 201, response.text
    odd_entry, plain_entry = response.json()["files"]
    assert "digits and dots" in odd_entry["warnings"][0]
    assert "warnings" not in plain_entry
    assert set(plain_entry) == {"file", "status", "name"}


def test_struct_sanity() -> None:
    """The encoders write what PS3.5 Table 7.1-1/7.1-2 say (checked once, as the tests above rely on them)."""
    assert EXPLICIT_LE.element(0x00100020, "LO", b"AB") == struct.pack("<HH2sH", 0x10, 0x20, b"LO", 2) + b"AB"
    assert IMPLICIT_LE.element(0x00100020, "LO", b"A") == struct.pack("<HHL", 0x10, 0x20, 2) + b"A "
    assert EXPLICIT_BE.element(0x00100020, "OB", b"") == struct.pack(">HH2sHL", 0x10, 0x20, b"OB", 0, 0)


@pytest.mark.parametrize("bulky", [False, True], ids=["in-index", "read-from-file"])
@pytest.mark.parametrize("encoder", [EXPLICIT_LE, IMPLICIT_LE], ids=["explicit", "implicit"])
async def test_wrong_length_inside_a_sequence_item(client: httpx.AsyncClient, encoder: Encoder, bulky: bool) -> None:
    """Only the element that cannot be converted becomes UN bytes; the rest of the item keeps its values.
    ``bulky``: the sequence is over the index's inline size, so ``?tag=`` reads it from the file."""
    sop, ref = generate_uid(), generate_uid()
    item = (
        encoder.element(REFERENCED_CLASS, "UI", SECONDARY_CAPTURE.encode())
        + encoder.element(REFERENCED_INSTANCE, "UI", ref.encode())
        + encoder.element(0x00280010, "US", b"\x01\x02\x03", pad=False)
        + (encoder.element(0x00280011, "US", b"\x00\x02" * 700) if bulky else b"")
    )
    body = identity(encoder, {SOP_INSTANCE: sop.encode()}) + encoder.sequence(REFERENCED_IMAGES, [item], False)
    syntax = ExplicitVRLittleEndian if encoder.explicit else ImplicitVRLittleEndian
    response = await post(client, part10(meta(sop, syntax), body))
    assert response.status_code == 201, response.text
    (answer,) = (await tag_value(client, response.json()["name"], REFERENCED_IMAGES))["value"]
    assert answer["00280010"] == {"vr": "UN", "InlineBinary": base64.b64encode(b"\x01\x02\x03").decode()}
    assert answer[f"{REFERENCED_INSTANCE:08X}"]["Value"] == [ref]
    if bulky:
        assert answer["00280011"] == {"vr": "US", "Value": [512] * 700}


async def test_overlong_values_fit_the_index_or_are_refused(client: httpx.AsyncClient) -> None:
    """Index columns have widths (PostgreSQL enforces them): text is cut to fit them, and an identifier
    that cannot fit is refused."""
    sop = generate_uid()
    body = (
        identity(EXPLICIT_LE, {SOP_INSTANCE: sop.encode()})
        + EXPLICIT_LE.element(0x00080020, "DA", b"2" * 100)  # Study Date
        + EXPLICIT_LE.element(0x00080060, "CS", b"M" * 100)  # Modality
    )
    response = await post(client, part10(meta(sop, ExplicitVRLittleEndian), body))
    assert response.status_code == 201, response.text
    row = (await client.get("/dicomFile", params={"limit": 1})).json()["data"][0]
    assert (row["study-date"], row["modality"]) == ("2" * 32, "M" * 64)
    too_long_syntax = "1.2." + "3" * 300
    response = await post(
        client, part10(meta(sop, too_long_syntax), identity(EXPLICIT_LE, {SOP_INSTANCE: sop.encode()}))
    )
    assert response.status_code == 400 and "Transfer Syntax UID" in response.json()["error"]
