"""Lightbox: a DICOM file service (upload, header lookups, browser-ready renders)."""

__version__ = "0.1.0"
