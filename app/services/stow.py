"""STOW-RS (PS3.18 §10.5): store the instances of one request, each on its own, and say what became of each.

Every part goes the way of ``POST /upload`` (staged, fsync'ed, validated, deduplicated, published,
indexed; see :class:`app.services.instances.InstanceService`), with one more check: when the
request names a study, an instance of another study is refused (PS3.18 §10.5.1). The answer is
the Store Instances Response Module (PS3.18 Table 10.5.3-1) as DICOM JSON.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from anyio import to_thread

from app.auth import policy
from app.auth.principals import Principal
from app.dicom.qido_result import retrieve_url
from app.errors import (
    Forbidden,
    InstanceConflict,
    InvalidDicom,
    LightboxError,
    StorageFull,
    StorageUnavailable,
    TooManyFiles,
    UploadTooLarge,
)
from app.services.instances import InstanceService, StoredFile, Upload


class FailureReason(enum.IntEnum):
    """Failure Reason (0008,1197) values of PS3.18 §10.5.3 (from PS3.4 Annex GG / B.2.3)."""

    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    OUT_OF_RESOURCES = 0xA700
    STUDY_MISMATCH = 0xA900  # the instance does not belong to the study the request names
    CANNOT_UNDERSTAND = 0xC000


def failure_reason(error: LightboxError) -> FailureReason:
    if isinstance(error, InstanceConflict):
        return FailureReason.DUPLICATE_SOP_INSTANCE
    if isinstance(error, UploadTooLarge | TooManyFiles | StorageFull | StorageUnavailable):
        return FailureReason.OUT_OF_RESOURCES
    if isinstance(error, InvalidDicom):
        return FailureReason.CANNOT_UNDERSTAND
    return FailureReason.PROCESSING_FAILURE


@dataclass(frozen=True)
class StowOutcome:
    """One part: stored (``stored`` set) or failed (``failure`` set); UIDs when the part could be read."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    stored: StoredFile | None = None
    failure: FailureReason | None = None


@dataclass
class StowResult:
    outcomes: list[StowOutcome] = field(default_factory=list)

    @property
    def status(self) -> int:
        """200 all stored, 202 some failed, 409 none stored (PS3.18 §10.5.3 and Table 10.5.3-2)."""
        failed = sum(1 for outcome in self.outcomes if outcome.failure is not None)
        if not failed:
            return 200
        return 409 if failed == len(self.outcomes) else 202

    def body(self, base_url: str, study: str | None) -> dict[str, Any]:
        """The Store Instances Response Module (PS3.18 Table 10.5.3-1) as a DICOM JSON data set."""
        referenced, failed = [], []
        for outcome in self.outcomes:
            item: dict[str, Any] = {
                "00081150": {"vr": "UI", "Value": [outcome.sop_class_uid]} if outcome.sop_class_uid else {"vr": "UI"},
                "00081155": {"vr": "UI", "Value": [outcome.sop_instance_uid]}
                if outcome.sop_instance_uid
                else {"vr": "UI"},
            }
            if outcome.failure is not None:
                item["00081197"] = {"vr": "US", "Value": [int(outcome.failure)]}
                failed.append(item)
                continue
            url = retrieve_url(
                base_url, outcome.study_instance_uid, outcome.series_instance_uid, outcome.sop_instance_uid
            )
            item["00081190"] = {"vr": "UR", "Value": [url]}
            referenced.append(item)
        body: dict[str, Any] = {}
        studies = {o.study_instance_uid for o in self.outcomes if o.failure is None}
        if study or len(studies) == 1:
            body["00081190"] = {"vr": "UR", "Value": [retrieve_url(base_url, study or studies.pop())]}
        if failed:
            body["00081198"] = {"vr": "SQ", "Value": failed}
        if referenced:
            body["00081199"] = {"vr": "SQ", "Value": referenced}
        return body


class StowSession:
    """Stores the parts of one STOW-RS request as they arrive, within the per-request file limit."""

    def __init__(self, instances: InstanceService, principal: Principal, study: str | None) -> None:
        policy.require_write(principal, "storing instances")  # before a byte of the body is read
        self.instances = instances
        self.principal = principal
        self.study = study
        self.result = StowResult()

    async def check_study(self) -> None:
        """Storing into a named study the caller sees but may not change (a read grant) is Forbidden.

        A study the caller cannot see is as absent: its instances are stored as the caller's own (the
        index keeps rows per owner), so the answer reveals nothing of anybody else's study."""
        if self.study is None:
            return
        access = await self.instances.index.study_access(self.principal, self.study)
        if access.visible and not access.writable and not access.owned:
            raise Forbidden("this study is shared with you read-only: storing instances into it needs write access")

    def has_room(self) -> bool:
        return len(self.result.outcomes) < self.instances.settings.max_files_per_upload

    async def begin(self) -> Upload:
        return await self.instances.begin_upload("stow.dcm")  # the name carries no patient data

    def fail(self, reason: FailureReason) -> None:
        """A part refused before it was stored (wrong media type, over the limits)."""
        self.result.outcomes.append(StowOutcome(failure=reason))

    async def finish(self, upload: Upload) -> None:
        """Validate and store a completely received part, or record why not."""
        try:
            prepared = await upload.prepare()
        except LightboxError as exc:
            await upload.abort()
            self.fail(failure_reason(exc))
            return
        except BaseException:
            await upload.abort()
            raise
        if prepared is None:  # a ZIP archive: STOW-RS parts are single instances
            await upload.abort()
            self.fail(FailureReason.CANNOT_UNDERSTAND)
            return
        a = prepared.attributes
        ids = StowOutcome(a.sop_class_uid, a.sop_instance_uid, a.study_instance_uid, a.series_instance_uid)
        if self.study is not None and a.study_instance_uid != self.study:
            await to_thread.run_sync(prepared.staged.discard)
            self.result.outcomes.append(replace(ids, failure=FailureReason.STUDY_MISMATCH))
            return
        try:
            stored = await self.instances.commit(self.principal, prepared)
        except LightboxError as exc:
            self.result.outcomes.append(replace(ids, failure=failure_reason(exc)))
            return
        self.result.outcomes.append(replace(ids, stored=stored))
