"""Response models: the kebab-case JSON existing clients parse."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    error: str = Field(examples=["malformed tag 'zz': use (gggg,eeee) with 4 hex digits each"])


class UploadBody(BaseModel):
    message: str = Field(examples=["File saved as: 0b7c6e2a-1f0d-4c9e-9a51-2f5d0c3f8e11-IM000001.dcm"])
    name: str = Field(
        description="The stored name, for later calls.", examples=["0b7c6e2a-1f0d-4c9e-9a51-2f5d0c3f8e11-IM000001.dcm"]
    )
    size: int = Field(description="Bytes stored.", examples=[3642242])
    warnings: list[str] | None = Field(
        None,
        description="Present only when the file was accepted although not conformant (non-conformant UIDs, "
        "mixed VR encodings, values of the wrong length): what, in words.",
    )


class AttributeData(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    header_attribute_name: str = Field(alias="header-attribute-name", examples=["MediaStorageSOPClassUID"])
    header_attribute_value: str = Field(alias="header-attribute-value", examples=["[1.2.840.10008.5.1.4.1.1.1.1.1]"])
    tag_values: str = Field(alias="tag-values", examples=["(0002,0002)"])
    vr: str = Field(examples=["UI"])
    value: Any = Field(
        description="PS3.18 Annex F value: the Value array, {'InlineBinary': base64} for bulk VRs, "
        "or null when a binary value is larger than the inline limit.",
        examples=[["1.2.840.10008.5.1.4.1.1.1.1.1"]],
    )


class AttributeBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": {
                        "header-attribute-name": "Rows",
                        "header-attribute-value": "[1537]",
                        "tag-values": "(0028,0010)",
                        "vr": "US",
                        "value": [1537],
                    }
                }
            ]
        }
    )

    data: AttributeData


class FileEntry(BaseModel):
    file: str = Field(description="The file's name as sent (for ZIP members, its path in the archive).")
    status: int = Field(description="201 stored, 200 already stored, 409 SOP Instance UID taken, 4xx refused.")
    name: str | None = Field(None, description="The stored name (or the name of the identical/conflicting file).")
    error: str | None = Field(None, description="Why the file was not stored.")
    warnings: list[str] | None = Field(None, description="As for a single file: present only when not conformant.")


class BulkUploadBody(BaseModel):
    message: str = Field(examples=["Saved 3 of 4 files"])
    files: list[FileEntry]


class InstanceRow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    patient_id: str = Field(alias="patient-id")
    patient_name: str = Field(alias="patient-name")
    study_instance_uid: str = Field(alias="study-instance-uid")
    study_date: str = Field(alias="study-date")
    series_instance_uid: str = Field(alias="series-instance-uid")
    sop_instance_uid: str = Field(alias="sop-instance-uid")
    modality: str
    size: int


_ROW_EXAMPLE = {
    "name": "0b7c6e2a-1f0d-4c9e-9a51-2f5d0c3f8e11-IM000001.dcm",
    "patient-id": "PAT-0001",
    "patient-name": "DOE^JANE",
    "study-instance-uid": "1.2.826.0.1.3680043.8.498.1",
    "study-date": "20240131",
    "series-instance-uid": "1.2.826.0.1.3680043.8.498.2",
    "sop-instance-uid": "1.2.826.0.1.3680043.8.498.3",
    "modality": "DX",
    "size": 3642242,
}


class ListBody(BaseModel):
    data: list[InstanceRow] = Field(description="One row per stored file, newest first.", examples=[[_ROW_EXAMPLE]])
    total: int = Field(description="Files matching the filters (all pages).", examples=[1])
    limit: int = Field(description="Page size used.", examples=[100])
    offset: int = Field(description="Entries skipped.", examples=[0])
