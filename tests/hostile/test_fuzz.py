"""A time-boxed mutation fuzz of ingest and render, seeded with pydicom's bundled files.

Every mutant must be either refused with :class:`InvalidDicom`, or accepted and then either
rendered or refused with a domain error: never another exception, never a hang.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.dicom.ingest import inspect
from app.errors import InvalidDicom, InvalidRequest, NotRenderable
from app.services.renders import Encoding, RenderRequest, render_file
from app.services.sandbox import DecodeSandbox
from tests.conftest import sample

SEEDS = [
    "CT_small.dcm",
    "MR_small_RLE.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",
    "OBXXXX1A.dcm",
    "rtstruct.dcm",
    "liver_1frame.dcm",
    # accepted leniently (issue 9): mixed VR encodings, bare big endian, a UN sequence, non-conformant UIDs
    "SC_rgb_jpeg.dcm",
    "ExplVR_BigEndNoMeta.dcm",
    "UN_sequence.dcm",
    "bad_sequence.dcm",
]
SEED_BYTES = {name: sample(name).read_bytes() for name in SEEDS}


Mutation = tuple[str, int, bytes]
mutation = st.tuples(
    st.sampled_from(["flip", "overwrite", "truncate", "insert", "length"]),
    st.integers(0, 1 << 20),
    st.sampled_from([b"\xff\xff\xff\xff", b"\xf0\xff\xff\x7f", b"\x01\x00\x00\x00", b"\x00", b"\xfe\xff\x00\xe0"])
    | st.binary(min_size=1, max_size=16),
)


def mutate(seed: str, mutations: list[Mutation]) -> bytes:
    """Apply small edits to a seed file; positions wrap around its length."""
    data = bytearray(SEED_BYTES[seed])
    for kind, position, chunk in mutations:
        at = position % max(len(data), 1)
        if kind == "flip":
            if data:
                data[at] ^= 1 << (chunk[0] % 8)
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = chunk
        else:  # overwrite, or a 4-byte length field somewhere becoming huge or odd
            data[at : at + len(chunk)] = chunk
    return bytes(data)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[DecodeSandbox]:
    pool = DecodeSandbox(workers=2, timeout_seconds=30)
    yield pool
    pool.close()


@pytest.mark.slow
@settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.sampled_from(SEEDS), mutations=st.lists(mutation, min_size=1, max_size=6))
def test_mutants_are_refused_or_handled(
    tmp_path: Path, sandbox: DecodeSandbox, seed: str, mutations: list[Mutation]
) -> None:
    """Renders go through the decode sandbox exactly as the service runs them."""
    path = tmp_path / "mutant.dcm"
    path.write_bytes(mutate(seed, mutations))
    try:
        inspect(path, 1 << 24)
    except InvalidDicom:
        return
    encoding = Encoding(max_pixels=1 << 24, png_compress_level=1, jpeg_quality=90)
    with contextlib.suppress(NotRenderable, InvalidRequest):
        content = anyio.run(sandbox.run, render_file, path, None, RenderRequest(), encoding)
        assert content.startswith(b"\x89PNG")
