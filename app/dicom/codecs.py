"""A permissively licensed JPEG decoder plugin for pydicom: libjpeg-turbo 3 through imagecodecs (BSD).

pydicom's own plugins leave a gap for JPEG (PS3.5 A.4.1): GDCM and Pillow refuse 12-bit JPEG
Extended (Process 2 and 4, 1.2.840.10008.1.2.4.51) and pylibjpeg-libjpeg is GPL. libjpeg-turbo 3
decodes 8- and 12-bit DCT and lossless (Process 14) streams, so it is registered as the last
plugin of those syntaxes: it is used when the earlier ones refuse a stream.

pydicom loads plugins by module path and asks each module ``is_available(uid)``; that is why this
module exposes the module-level names pydicom looks for (``DECODER_DEPENDENCIES``, ``is_available``,
``decode_frame``). pydicom's decoder registry is process-wide by design; :func:`install` adds the
plugin once and is safe to call again.
"""

from __future__ import annotations

import numpy as np
from pydicom import uid
from pydicom.pixels.decoders.base import Decoder, DecodeRunner, get_decoder

PLUGIN_LABEL = "lightbox-imagecodecs"
#: Retired JPEG processes (PS3.5 A.4.1, PS3.6 Table A-1): Extended 3 & 5 (arithmetic), Spectral Selection
#: 6 & 8 / 7 & 9, Full Progression 10 & 12 / 11 & 13. pydicom has no decoder for them; libjpeg-turbo
#: decodes every non-hierarchical DCT process, Huffman or arithmetic coded, 8 or 12 bit.
RETIRED_JPEG_SYNTAXES = frozenset(uid.UID(f"1.2.840.10008.1.2.4.{n}") for n in range(52, 57))
JPEG_SYNTAXES = (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1)
DECODER_DEPENDENCIES = {syntax: ("imagecodecs>=2024.1.1",) for syntax in JPEG_SYNTAXES}

try:
    import imagecodecs

    _AVAILABLE = bool(getattr(imagecodecs, "JPEG8", None) and imagecodecs.JPEG8.available)
except ImportError:  # pragma: no cover - imagecodecs is a runtime dependency
    _AVAILABLE = False


def is_available(syntax: str) -> bool:
    """pydicom plugin hook: True for the JPEG syntaxes when imagecodecs has libjpeg-turbo."""
    return _AVAILABLE and syntax in JPEG_SYNTAXES


def decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One JPEG frame as stored samples, colour-by-pixel, without colour conversion.

    Like pydicom's other plugins the samples come back as encoded ("raw"): a YBR_FULL(_422)
    stream stays YCbCr (pydicom converts it to RGB afterwards, PS3.3 C.7.6.3.1.2) and an RGB
    stream stays RGB, because the input and output colour spaces are set equal.
    """
    space = "YCbCr" if runner.samples_per_pixel == 3 else None
    decoded = imagecodecs.jpeg8_decode(src, colorspace=space, outcolorspace=space)
    expected = (runner.rows, runner.columns) + ((3,) if runner.samples_per_pixel == 3 else ())
    if decoded.shape != expected:
        raise ValueError(f"the JPEG stream holds an image of shape {decoded.shape}, the header declares {expected}")
    if runner.samples_per_pixel == 3:
        runner.set_option("planar_configuration", 0)
    container = np.dtype(f"<u{max(runner.bits_allocated // 8, 1)}")
    return bytes(np.ascontiguousarray(decoded, dtype=container).tobytes())


def retired_jpeg_decoder() -> tuple[Decoder, str] | None:
    """The decoder and plugin for a retired JPEG process, or None when libjpeg-turbo is missing.

    pydicom's JPEG Extended (Process 2 & 4) decoder is used with this plugin alone: its options
    (8 or 12 bit DCT, lossy, colour as encoded) are those of every retired non-hierarchical process.
    """
    if not _AVAILABLE:
        return None
    return get_decoder(uid.JPEGExtended12Bit), PLUGIN_LABEL


def install() -> None:
    """Register the plugin with pydicom's JPEG decoders (idempotent)."""
    for syntax in JPEG_SYNTAXES:
        decoder = get_decoder(syntax)
        known = decoder.available_plugins + tuple(m.split(" ", 1)[0] for m in decoder.missing_dependencies)
        if PLUGIN_LABEL not in known:
            decoder.add_plugin(PLUGIN_LABEL, (__name__, "decode_frame"))
