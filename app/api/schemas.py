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
