"""Refuse Part 10 files whose 128-byte preamble is an executable header (PS3.10 §7.1, §7.5).

The preamble is free for application use (TIFF dual-personality files put a TIFF header
there), which also lets an attacker craft a file that is both valid DICOM and a runnable
program. We keep the bytes exactly as sent, so instead of zeroing such a preamble we refuse
the upload and say why.
"""

from __future__ import annotations

from app.errors import InvalidDicom

#: Magic numbers of executables and scripts a preamble must not start with.
EXECUTABLE_MAGIC: dict[bytes, str] = {
    b"MZ": "a Windows/DOS executable (MZ)",
    b"\x7fELF": "an ELF executable",
    b"#!": "a script (#!)",
    b"\xca\xfe\xba\xbe": "a Mach-O or Java class file",
    b"\xfe\xed\xfa\xce": "a Mach-O executable",
    b"\xfe\xed\xfa\xcf": "a Mach-O executable",
    b"\xce\xfa\xed\xfe": "a Mach-O executable",
    b"\xcf\xfa\xed\xfe": "a Mach-O executable",
    b"PK\x03\x04": "a ZIP archive (JAR, Office, ...)",
}


def check_preamble(preamble: bytes) -> None:
    """Raise :class:`InvalidDicom` when the preamble starts like an executable."""
    for magic, kind in EXECUTABLE_MAGIC.items():
        if preamble.startswith(magic):
            raise InvalidDicom(
                f"the file's 128-byte preamble holds {kind}: such polyglot files are refused; "
                "re-export it with a zeroed preamble"
            )
