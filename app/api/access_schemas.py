"""Request and response models of the access-control routes (auth, admin, grants, shares)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

STUDY_UID = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"


def iso(us: int | None) -> str | None:
    """Microseconds since the epoch as ISO 8601 UTC (``2026-12-02T08:00:00Z``)."""
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class LoginBody(BaseModel):
    access_token: str = Field(examples=["lbt_3f2a9c0d1e4b5a67_9V0r...43 characters"])
    token_type: Literal["bearer"] = Field(examples=["bearer"])
    expires_in: int = Field(description="Seconds the token is valid.", examples=[43200])
    csrf_token: str = Field(description="Send as X-CSRF-Token with cookie-authenticated writes.", examples=["b1c..."])


class MeBody(BaseModel):
    username: str = Field(examples=["alice"])
    role: Literal["admin", "user", "share"] = Field(examples=["user"])


class KeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=128, examples=["nightly import"])
    scope: Literal["read", "write", "admin"] = Field("read", examples=["write"])
    expires_in_days: int | None = Field(None, ge=1, le=3650, examples=[90])


class NewKeyBody(BaseModel):
    id: str = Field(examples=["3f2a9c0d1e4b5a67"])
    key: str = Field(description="Shown only now.", examples=["lbx_3f2a9c0d1e4b5a67_Zx..."])
    scope: str = Field(examples=["write"])
    expires_at: str | None = Field(examples=["2027-03-02T08:00:00Z"])


class KeyRow(BaseModel):
    id: str = Field(examples=["3f2a9c0d1e4b5a67"])
    name: str = Field(examples=["nightly import"])
    scope: str = Field(examples=["write"])
    created_at: str | None = Field(examples=["2026-12-02T08:00:00Z"])
    expires_at: str | None = Field(examples=[None])
    last_used_at: str | None = Field(examples=["2026-12-02T09:00:00Z"])


class KeyList(BaseModel):
    data: list[KeyRow] = Field(examples=[[]])


class UserRequest(BaseModel):
    username: str = Field(min_length=1, max_length=128, examples=["alice"])
    password: str | None = Field(None, max_length=1024, description="Unset: generated and returned once.")
    role: Literal["user", "admin"] = Field("user", examples=["user"])


class UserChange(BaseModel):
    role: Literal["user", "admin"] | None = Field(None, examples=["admin"])
    disabled: bool | None = Field(None, examples=[True])
    password: str | None = Field(None, max_length=1024, examples=["a new long passphrase"])


class UserBody(BaseModel):
    username: str = Field(examples=["alice"])
    role: str = Field(examples=["user"])
    disabled: bool = Field(examples=[False])
    created_at: str | None = Field(examples=["2026-12-02T08:00:00Z"])
    password: str | None = Field(None, description="Only when generated: shown once.", examples=[None])


class UserList(BaseModel):
    data: list[UserBody] = Field(examples=[[]])


class GrantRequest(BaseModel):
    study_instance_uid: str = Field(min_length=1, max_length=256, examples=[STUDY_UID])
    username: str = Field(min_length=1, max_length=128, examples=["bob"])
    access: Literal["read", "write"] = Field("read", examples=["read"])


class GrantBody(BaseModel):
    id: int = Field(examples=[7])
    study_instance_uid: str = Field(examples=[STUDY_UID])
    grantor: str = Field(examples=["alice"])
    username: str = Field(description="The grantee.", examples=["bob"])
    access: str = Field(examples=["read"])
    created_at: str | None = Field(examples=["2026-12-02T08:00:00Z"])


class GrantList(BaseModel):
    data: list[GrantBody] = Field(examples=[[]])


class ShareRequest(BaseModel):
    study_instance_uid: str = Field(min_length=1, max_length=256, examples=[STUDY_UID])
    expires_in: int = Field(86400, ge=1, description="Seconds (at most LIGHTBOX_SHARE_MAX_SECONDS).", examples=[3600])


class NewShareBody(BaseModel):
    id: str = Field(examples=["9a8b7c6d5e4f3a21"])
    token: str = Field(description="Shown only now.", examples=["lbs_9a8b7c6d5e4f3a21_Qm..."])
    url: str = Field(examples=["http://127.0.0.1:8080/dicomFile?StudyInstanceUID=1.2.3&token=lbs_..."])
    expires_at: str | None = Field(examples=["2026-12-03T08:00:00Z"])


class ShareRow(BaseModel):
    id: str = Field(examples=["9a8b7c6d5e4f3a21"])
    study_instance_uid: str = Field(examples=[STUDY_UID])
    creator: str = Field(examples=["alice"])
    created_at: str | None = Field(examples=["2026-12-02T08:00:00Z"])
    expires_at: str | None = Field(examples=["2026-12-03T08:00:00Z"])


class ShareList(BaseModel):
    data: list[ShareRow] = Field(examples=[[]])
