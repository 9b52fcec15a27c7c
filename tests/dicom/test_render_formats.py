"""Every transfer syntax and photometric interpretation, against independent expectations.

pydicom's bundled files come in families: one image stored uncompressed and again in other
transfer syntaxes. The expectation for a compressed or re-encoded member is the uncompressed
one read straight from its bytes with numpy (no decoder involved), so a decoder, a colour
conversion or a byte-order mistake shows up as a difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from app.dicom.pixels import decode_frame
from app.dicom.render import to_display
from tests.conftest import sample

BUDGET = 1 << 28


def stored(name: str, frame: int = 0) -> np.ndarray:
    path = sample(name)
    return decode_frame(path, dcmread(path, defer_size=1024, force=True), frame, BUDGET)


def shown(name: str, frame: int = 0) -> np.ndarray:
    path = sample(name)
    ds = dcmread(path, defer_size=1024, force=True)
    return to_display(decode_frame(path, ds, frame, BUDGET), ds, frame)


def raw_native(name: str, frame: int = 0) -> np.ndarray:
    """Frame ``frame`` of a native little-endian file, straight from its bytes (PS3.5 8.1.1)."""
    ds = dcmread(sample(name))
    signed = "i" if ds.PixelRepresentation else "u"
    dtype = np.dtype(f"<{signed}{ds.BitsAllocated // 8}")
    samples = int(ds.SamplesPerPixel)
    count = ds.Rows * ds.Columns * samples
    flat = np.frombuffer(ds.PixelData, dtype=dtype, count=count, offset=frame * count * dtype.itemsize)
    if ds.PixelRepresentation and ds.BitsStored < ds.BitsAllocated:  # sign-extend from Bits Stored
        shift = ds.BitsAllocated - ds.BitsStored
        flat = (flat << shift) >> shift
    if samples == 1:
        return flat.reshape(ds.Rows, ds.Columns)
    if int(ds.get("PlanarConfiguration", 0)) == 1:
        return flat.reshape(samples, ds.Rows, ds.Columns).transpose(1, 2, 0)
    return flat.reshape(ds.Rows, ds.Columns, samples)


LOSSLESS_FAMILIES = [
    # (uncompressed original, same image in another transfer syntax, frame)
    ("MR_small.dcm", "MR_small_implicit.dcm", 0),  # Implicit VR Little Endian
    ("MR_small.dcm", "MR_small_bigendian.dcm", 0),  # Explicit VR Big Endian
    ("MR_small.dcm", "MR_small_RLE.dcm", 0),  # RLE Lossless
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm", 0),  # JPEG-LS Lossless
    ("MR_small.dcm", "MR_small_jp2klossless.dcm", 0),  # JPEG 2000 Lossless
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm", 0),  # JPEG 2000 Lossless, 12 bits stored
    ("RG3_UNCR.dcm", "RG3_J2KR.dcm", 0),  # MONOCHROME1, 10 bits stored
    ("emri_small.dcm", "emri_small_RLE.dcm", 6),  # multi-frame: frame 7 only
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm", 6),
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm", 6),
    ("emri_small.dcm", "emri_small_big_endian.dcm", 6),
    ("rtdose_1frame.dcm", "rtdose_rle_1frame.dcm", 0),  # 32-bit
    ("rtdose_1frame.dcm", "rtdose_expb_1frame.dcm", 0),
    ("SC_rgb.dcm", "SC_rgb_rle.dcm", 0),  # RGB
    ("SC_rgb.dcm", "SC_rgb_jpeg_gdcm.dcm", 0),  # JPEG Lossless (Process 14 SV1), RGB
    ("SC_rgb.dcm", "SC_rgb_expb.dcm", 0),
    ("SC_rgb.dcm", "SC_rgb_gdcm_KY.dcm", 0),  # JPEG 2000, RGB
    ("SC_rgb_16bit.dcm", "SC_rgb_rle_16bit.dcm", 0),
    ("SC_rgb_16bit.dcm", "SC_rgb_expb_16bit.dcm", 0),
    ("SC_rgb_32bit.dcm", "SC_rgb_rle_32bit.dcm", 0),
    ("SC_rgb_2frame.dcm", "SC_rgb_rle_2frame.dcm", 1),
    ("color-px.dcm", "color-pl.dcm", 0),  # Planar Configuration 1
    ("US1_UNCR.dcm", "US1_J2KR.dcm", 0),  # YBR_RCT (reversible colour transform) -> RGB
    ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm", 0),  # PALETTE COLOR indices
    ("OBXXXX1A.dcm", "OBXXXX1A_expb.dcm", 0),
]


@pytest.mark.parametrize(("original", "variant", "frame"), LOSSLESS_FAMILIES, ids=lambda v: str(v))
def test_lossless_syntaxes_decode_to_the_original_values(original: str, variant: str, frame: int) -> None:
    np.testing.assert_array_equal(stored(variant, frame), raw_native(original, frame))
    np.testing.assert_array_equal(shown(variant, frame), shown(original, frame))


@pytest.mark.parametrize(
    ("original", "variant", "mean_limit"),
    [
        ("MR2_UNCR.dcm", "MR2_J2KI.dcm", 8.0),  # JPEG 2000 lossy
        ("US1_UNCR.dcm", "US1_J2KI.dcm", 3.0),  # YBR_ICT (irreversible) -> RGB
        ("SC_rgb.dcm", "SC_ybr_full_uncompressed.dcm", 1.0),  # YBR_FULL native -> RGB
        ("SC_rgb.dcm", "SC_ybr_full_422_uncompressed.dcm", 1.0),  # YBR_FULL_422 native -> RGB
        ("SC_rgb.dcm", "SC_rgb_jpeg_dcmtk.dcm", 1.0),  # JPEG baseline YBR_FULL
        ("SC_rgb.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm", 4.0),  # JPEG baseline YBR_FULL_422 (chroma subsampled)
        ("SC_rgb.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", 1.0),  # JPEG baseline stored as RGB
        ("SC_rgb.dcm", "SC_rgb_jls_lossy_line.dcm", 1.0),  # JPEG-LS near-lossless
    ],
)
def test_lossy_and_colour_converted_syntaxes_stay_close(original: str, variant: str, mean_limit: float) -> None:
    ours = stored(variant).astype(np.float64)
    expected = raw_native(original).astype(np.float64)
    assert ours.shape == expected.shape
    assert np.abs(ours - expected).mean() < mean_limit


def test_jpeg_extended_12_bit_matches_the_lossless_copy_of_the_slice() -> None:
    """JPGExtended.dcm (12-bit JPEG Process 4) is the slice of JPEG-LL.dcm, lossy: libjpeg-turbo decodes it."""
    lossy = stored("JPGExtended.dcm").astype(np.float64)
    lossless = stored("JPEG-LL.dcm").astype(np.float64)
    assert lossy.dtype == np.float64 and lossy.shape == lossless.shape == (1024, 256)
    assert np.corrcoef(lossy.ravel(), lossless.ravel())[0, 1] > 0.98
    assert np.abs(lossy - lossless).mean() < 4


def test_jpeg_lossless_and_jpeg_ls_near_lossless_8_bit_decode() -> None:
    lossless = stored("JPGLosslessP14SV1_1s_1f_8b.dcm")
    assert lossless.shape == (768, 1024) and lossless.dtype == np.uint8 and lossless.std() > 10
    near = stored("JPEGLSNearLossless_16.dcm")
    assert near.shape == (50, 10) and near.dtype == np.uint16


def test_deflated_dataset() -> None:
    """Deflated Explicit VR Little Endian: the data set is zlib-compressed, the pixels are native."""
    ds = dcmread(sample("image_dfl.dcm"))
    expected = np.frombuffer(ds.PixelData, dtype=np.uint8).reshape(ds.Rows, ds.Columns)
    np.testing.assert_array_equal(stored("image_dfl.dcm"), expected)


def test_one_bit_data_is_unpacked_lsb_first_and_shown_black_and_white() -> None:
    """Bits Allocated 1 (PS3.5 8.1.1): bits packed little-endian within each byte."""
    ds = dcmread(sample("liver_1frame.dcm"))
    bits = np.unpackbits(np.frombuffer(ds.PixelData, dtype=np.uint8), bitorder="little")
    expected = bits[: ds.Rows * ds.Columns].reshape(ds.Rows, ds.Columns)
    np.testing.assert_array_equal(stored("liver_1frame.dcm"), expected)
    np.testing.assert_array_equal(stored("liver_expb_1frame.dcm"), expected)
    np.testing.assert_array_equal(shown("liver_1frame.dcm"), expected * 255)


def test_rgb_16_and_32_bit_are_scaled_by_bits_stored() -> None:
    for name in ("SC_rgb_16bit.dcm", "SC_rgb_32bit.dcm"):
        ds = dcmread(sample(name))
        expected = raw_native(name).astype(np.float64) * 255 / (2**ds.BitsStored - 1)
        assert np.abs(shown(name).astype(np.float64) - expected).max() <= 0.5 + 1e-9


def test_palette_colour_with_8_bit_indices_and_16_bit_entries() -> None:
    """PALETTE COLOR (C.7.6.3.1.5): each index looks up Red/Green/Blue LUT Data (16-bit entries here)."""
    ds = dcmread(sample("OBXXXX1A.dcm"))
    index = raw_native("OBXXXX1A.dcm").astype(np.int64)
    channels = []
    for colour in ("Red", "Green", "Blue"):
        entries, first, _bits = ds[f"{colour}PaletteColorLookupTableDescriptor"].value
        table = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, dtype="<u2")
        channels.append(table[np.clip(index - first, 0, (entries or 65536) - 1)])
    expected = np.rint(np.stack(channels, axis=-1) / 65535 * 255)
    for name in ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm", "OBXXXX1A_expb.dcm"):
        np.testing.assert_array_equal(shown(name), expected)


def test_segmented_16_bit_palette_little_and_big_endian() -> None:
    """gdcm-US-ALOKA-16: 16-bit indices into segmented palettes (C.7.9.2); both byte orders agree."""
    little, big = shown("gdcm-US-ALOKA-16.dcm"), shown("gdcm-US-ALOKA-16_big.dcm")
    assert little.shape == (480, 640, 3)
    np.testing.assert_array_equal(little, big)
    assert len(np.unique(little.reshape(-1, 3), axis=0)) > 16  # a real colour picture, not a flat fill


def test_enhanced_multi_frame_uses_the_frames_functional_groups() -> None:
    """Enhanced CT (C.7.6.16): rescale and window come from the Shared Functional Groups."""
    ds = dcmread(sample("eCT_Supplemental.dcm"))
    shared: Dataset = ds.SharedFunctionalGroupsSequence[0]
    transform = shared.PixelValueTransformationSequence[0]
    voi = shared.FrameVOILUTSequence[0]
    hu = raw_native("eCT_Supplemental.dcm", 1) * float(transform.RescaleSlope) + float(transform.RescaleIntercept)
    c, w = float(voi.WindowCenter), float(voi.WindowWidth)
    expected = np.rint(np.clip(((hu - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255))
    np.testing.assert_array_equal(shown("eCT_Supplemental.dcm", 1), expected)


def test_modality_lut_sequence_then_min_max() -> None:
    """mlut_18: Modality LUT Sequence (C.11.1) instead of rescale; no window, so min-max of the output."""
    ds = dcmread(sample("mlut_18.dcm"))
    item = ds.ModalityLUTSequence[0]
    entries, first, _bits = item.LUTDescriptor  # read as SS here: first is already signed
    table = np.asarray(item.LUTData, dtype=np.float64)
    values = table[np.clip(raw_native("mlut_18.dcm").astype(np.int64) - first, 0, (entries or 65536) - 1)]
    if "WindowCenter" in ds:
        pytest.skip("the file carries a window; min-max not exercised")
    expected = np.rint((values - values.min()) / (values.max() - values.min()) * 255)
    assert np.abs(shown("mlut_18.dcm").astype(np.float64) - expected).max() <= 1


def test_voi_lut_sequence() -> None:
    """vlut_04: no window, a VOI LUT Sequence (C.11.2.1.1) maps stored values to its output range."""
    ds = dcmread(sample("vlut_04.dcm"))
    item = ds.VOILUTSequence[0]
    entries, first, bits = item.LUTDescriptor
    table = np.asarray(item.LUTData, dtype=np.float64)
    mapped = table[np.clip(raw_native("vlut_04.dcm").astype(np.int64) - first, 0, (entries or 65536) - 1)]
    top = max(2.0**bits - 1, table.max())
    np.testing.assert_array_equal(shown("vlut_04.dcm"), np.rint(mapped * 255 / top))


def test_every_decoded_frame_path_reads_only_what_it_needs(tmp_path: Path) -> None:
    """Frame N of a 30-frame JPEG baseline file is frame N, not frame 1."""
    first, last = stored("examples_ybr_color.dcm", 0), stored("examples_ybr_color.dcm", 29)
    assert first.shape == last.shape == (240, 320, 3)
    assert not np.array_equal(first, last)
