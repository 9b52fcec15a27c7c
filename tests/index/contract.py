"""Records for the index contract suites: synthetic instances (no patient data), made per test."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace

from app.dicom.indexed import InstanceAttributes
from app.index.base import NewInstance

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def uid() -> str:
    """A UUID-derived UID (PS3.5 B.2: the 2.25 root)."""
    return f"2.25.{uuid.uuid4().int}"


def new_instance(
    owner: str = "local",
    study: str | None = None,
    series: str | None = None,
    sop: str | None = None,
    content: bytes | None = None,
    modality: str = "CT",
    patient_id: str = "P1",
    patient_name: str = "Test^Alpha",
    uploaded_at_us: int = 1_000_000,
) -> NewInstance:
    """One instance row as an upload would commit it; ``content`` stands for the file's bytes."""
    sop = sop or uid()
    data = content if content is not None else sop.encode()
    attributes = InstanceAttributes(
        patient_id=patient_id,
        patient_name=patient_name,
        patient_birth_date="",
        study_instance_uid=study or uid(),
        study_date="20200105",
        study_description="",
        accession_number="",
        series_instance_uid=series or uid(),
        modality=modality,
        series_number=1,
        sop_class_uid=CT_IMAGE,
        sop_instance_uid=sop,
        instance_number=1,
        rows=2,
        columns=2,
        number_of_frames=None,
        transfer_syntax_uid=EXPLICIT_LE,
    )
    header = {"00080018": {"vr": "UI", "Value": [sop]}, "00080060": {"vr": "CS", "Value": [modality]}}
    return NewInstance(
        name=f"{uuid.uuid4()}-file.dcm",
        owner=owner,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_at_us=uploaded_at_us,
        attributes=attributes,
        header=header,
    )


def renamed(instance: NewInstance) -> NewInstance:
    """The same bytes uploaded again: a new server-made name."""
    return replace(instance, name=f"{uuid.uuid4()}-again.dcm")
