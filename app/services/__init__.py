"""Orchestration: the only layer that touches both the DICOM domain and the stores."""
