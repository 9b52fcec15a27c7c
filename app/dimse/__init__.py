"""The DICOM network transport (PS3.7 DIMSE over PS3.8 upper layer), on pynetdicom."""
