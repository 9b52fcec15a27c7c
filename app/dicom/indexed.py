"""The attributes the index keeps per instance: what a study list and a QIDO-RS search need.

Patient (PS3.3 C.7.1.1), General Study (C.7.2.1), General Series (C.7.3.1), SOP Common
(C.12.1) and Image Pixel (C.7.6.3) attributes; QIDO-RS matching keys of PS3.18 §10.6.1.2.
Lenient: a missing or malformed value becomes empty, never a refusal. The identifying UIDs come
from ingest (:mod:`app.dicom.identifiers`), which has judged them already.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from app.dicom.ingest import IngestFacts

MAX_TEXT = 256  # longer than any VR allows for these attributes (LO 64, PN 64 per group)
MAX_DATE, MAX_CODE = 32, 64  # the index's widths for DA and CS columns (app/index/schema.py)


@dataclass(frozen=True)
class InstanceAttributes:
    """One instance's index entry, patient to instance level."""

    patient_id: str
    patient_name: str
    patient_birth_date: str
    study_instance_uid: str
    study_date: str
    study_description: str
    accession_number: str
    series_instance_uid: str
    modality: str
    series_number: int | None
    sop_class_uid: str
    sop_instance_uid: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    number_of_frames: int | None
    transfer_syntax_uid: str
    study_time: str = ""
    referring_physician_name: str = ""
    study_id: str = ""
    series_description: str = ""
    pps_start_date: str = ""
    pps_start_time: str = ""


def _text(dataset: Dataset, keyword: str, width: int = MAX_TEXT) -> str:
    """The value as text, cut to the index column's ``width`` (a hostile value must not fail the insert)."""
    try:
        value = dataset.get(keyword)
    except Exception:  # a malformed value is not indexed
        return ""
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__") and not hasattr(value, "components"):
        value = "\\".join(str(v) for v in value)
    # NUL pads a value (PS3.5 6.2) and is no character of these VRs; inside one it is kept visible as U+FFFD
    # (PostgreSQL's text cannot hold NUL: the file must index alike on every database)
    return str(value).strip(" \x00").replace("\x00", "\ufffd")[:width]


def _number(dataset: Dataset, keyword: str) -> int | None:
    try:
        value = dataset.get(keyword)
        if value is None or value == "":
            return None
        number = int(value[0] if isinstance(value, (list, tuple)) else value)
    except Exception:
        return None
    return number if -(2**31) <= number < 2**31 else None


def index_attributes(facts: IngestFacts) -> InstanceAttributes:
    """Read the indexed attributes of an accepted file; its identifiers come from ingest (meta as fallback)."""
    dataset = facts.header
    return InstanceAttributes(
        patient_id=_text(dataset, "PatientID"),
        patient_name=_text(dataset, "PatientName"),
        patient_birth_date=_text(dataset, "PatientBirthDate", MAX_DATE),
        study_instance_uid=facts.study_instance_uid,
        study_date=_text(dataset, "StudyDate", MAX_DATE),
        study_description=_text(dataset, "StudyDescription"),
        accession_number=_text(dataset, "AccessionNumber"),
        series_instance_uid=facts.series_instance_uid,
        modality=_text(dataset, "Modality", MAX_CODE),
        series_number=_number(dataset, "SeriesNumber"),
        sop_class_uid=facts.sop_class_uid,
        sop_instance_uid=facts.sop_instance_uid,
        instance_number=_number(dataset, "InstanceNumber"),
        rows=_number(dataset, "Rows"),
        columns=_number(dataset, "Columns"),
        number_of_frames=_number(dataset, "NumberOfFrames"),
        transfer_syntax_uid=facts.transfer_syntax_uid,
        study_time=_text(dataset, "StudyTime"),
        referring_physician_name=_text(dataset, "ReferringPhysicianName"),
        study_id=_text(dataset, "StudyID"),
        series_description=_text(dataset, "SeriesDescription"),
        pps_start_date=_text(dataset, "PerformedProcedureStepStartDate"),
        pps_start_time=_text(dataset, "PerformedProcedureStepStartTime"),
    )
