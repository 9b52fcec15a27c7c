"""Property-based tests: the tag parser, name handling and value formatting never fail in unplanned ways."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from app.dicom.attributes import describe
from app.dicom.tags import format_tag, parse_tag
from app.errors import FileNotFound, InvalidRequest
from app.storage.names import check_stored_name, is_stored_name, new_stored_name, safe_base_name

SAFE = re.compile(r"^[A-Za-z0-9_.+-]{1,120}$")


@given(st.text(max_size=300))
def test_tag_parser_only_raises_invalid_request(text: str) -> None:
    try:
        tag = parse_tag(text)
    except InvalidRequest as exc:
        assert exc.message
    else:
        assert 0 <= int(tag) <= 0xFFFFFFFF


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.booleans())
def test_tag_spellings_round_trip(group: int, element: int, lower: bool) -> None:
    text = format_tag(Tag(group, element))
    text = text.lower() if lower else text
    assert parse_tag(text) == Tag(group, element)
    assert parse_tag(text.strip("()")) == Tag(group, element)
    assert parse_tag(text.strip("()").replace(",", "")) == Tag(group, element)


@given(st.one_of(st.none(), st.text(max_size=5000), st.binary(max_size=500).map(lambda b: b.decode("latin-1"))))
def test_any_client_name_becomes_a_safe_stored_name(original: str | None) -> None:
    base = safe_base_name(original)
    assert SAFE.match(base)
    assert base not in (".", "..")
    name = new_stored_name(original)
    assert is_stored_name(name)
    assert check_stored_name(name) == name


@given(st.text(max_size=400))
def test_foreign_names_never_pass_unless_server_shaped(name: str) -> None:
    if is_stored_name(name):
        assert "/" not in name and "\\" not in name and "\x00" not in name and not name.startswith(".")
    else:
        try:
            check_stored_name(name)
        except FileNotFound:
            pass
        else:  # pragma: no cover - the property failing
            raise AssertionError(f"accepted {name!r}")


TEXT_VRS = ["AE", "CS", "LO", "SH", "LT", "ST", "UT", "UC", "PN", "UI", "DA", "TM", "DT", "AS", "UR"]
text_values = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=64)


@settings(max_examples=300)
@given(
    st.one_of(
        st.tuples(st.sampled_from(TEXT_VRS), st.lists(text_values, max_size=4)),
        st.tuples(st.sampled_from(["US", "SS", "UL", "SL"]), st.lists(st.integers(0, 32767), max_size=4)),
        st.tuples(st.sampled_from(["FL", "FD"]), st.lists(st.floats(allow_nan=False, width=32), max_size=4)),
        st.tuples(st.sampled_from(["OB", "OW", "UN"]), st.binary(max_size=2048)),
        st.tuples(st.just("DS"), st.lists(st.decimals(-1e6, 1e6, places=3).map(str), max_size=3)),
        st.tuples(st.just("IS"), st.lists(st.integers(-(2**31), 2**31 - 1).map(str), max_size=3)),
    )
)
def test_value_formatting_is_bracketed_and_bounded(vr_and_value: tuple[str, object]) -> None:
    vr, value = vr_and_value
    ds = Dataset()
    ds.add_new(0x00091010, vr, value)
    attribute = describe(ds, Tag(0x00091010), inline_max=1024)
    assert attribute.text.startswith("[") and attribute.text.endswith("]")
    assert attribute.vr == vr
    if vr in ("OB", "OW", "UN"):
        assert attribute.text == f"[{len(value)} bytes]"  # type: ignore[arg-type]
        assert (attribute.value is None) == (len(value) > 1024)  # type: ignore[arg-type]
