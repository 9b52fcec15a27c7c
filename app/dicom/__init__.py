"""Pure DICOM domain code (pydicom, numpy, Pillow). Never imports FastAPI."""
