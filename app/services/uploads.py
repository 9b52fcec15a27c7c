"""One upload request: several files and/or ZIP archives, each stored on its own, each reported.

A file that fails does not stop the others (as STOW-RS, PS3.18 §10.5); the request itself fails
only when the body is malformed or too large. Every file reported is recorded once in the audit
trail (:meth:`UploadSession._report`): stored, already stored, or refused and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from anyio import to_thread

from app.auth import policy
from app.auth.principals import Principal
from app.errors import LightboxError, TooManyFiles
from app.services.archives import Archive, ZipLimits
from app.services.audit import Action
from app.services.instances import InstanceService, StoredFile, Upload


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file (``stored`` is None when ``error`` says why not)."""

    file: str
    stored: StoredFile | None = None
    error: LightboxError | None = None


@dataclass
class UploadReport:
    """Every file of the request in order; ``archives`` counts ZIPs, ``parts`` the file parts."""

    files: list[FileOutcome] = field(default_factory=list)
    parts: int = 0
    archives: int = 0

    @property
    def single(self) -> bool:
        """One plain file: answered exactly as the original single-file API did."""
        return self.parts == 1 and self.archives == 0 and len(self.files) == 1


class UploadSession:
    """Stores the files of one request as they arrive, within the per-request file limit."""

    def __init__(self, instances: InstanceService, principal: Principal) -> None:
        policy.require_write(principal, "uploading")  # before a byte of the body is read
        self.instances = instances
        self.principal = principal
        self.report = UploadReport()
        settings = instances.settings
        self.max_files = settings.max_files_per_upload
        self.limits = ZipLimits(
            settings.zip_max_members, settings.zip_max_total_bytes, settings.zip_max_ratio, settings.max_upload_bytes
        )

    def _report(self, outcome: FileOutcome) -> None:
        """Add one file's outcome to the report and to the audit trail (the client's file name only in
        the record's detail: it may name a patient, and the log line never carries it)."""
        self.report.files.append(outcome)
        audit = self.instances.audit
        detail: dict[str, str | bool] = {"file": outcome.file[:300]} if outcome.file else {}
        if outcome.stored is not None:
            stored = outcome.stored
            detail["created"] = stored.created
            audit.record(
                self.principal,
                Action.UPLOAD,
                study_instance_uid=stored.study_instance_uid,
                name=stored.name,
                detail=detail,
            )
        elif outcome.error is not None:
            audit.failed(self.principal, Action.UPLOAD, outcome.error, detail=detail)

    def _room(self) -> bool:
        return len(self.report.files) < self.max_files

    def refuse_part(self, original_name: str | None) -> None:
        """A file part beyond the limit: reported, its bytes skipped."""
        self.report.parts += 1
        self._report(
            FileOutcome(original_name or "", error=TooManyFiles(f"more than {self.max_files} files in one upload"))
        )

    def has_room(self) -> bool:
        return self._room()

    def fail_part(self, original_name: str | None, error: LightboxError) -> None:
        """A part that failed while being received (too large): reported, the others go on."""
        self.report.parts += 1
        self._report(FileOutcome(original_name or "", error=error))

    async def finish_part(self, upload: Upload) -> None:
        """Store a completely received part: a DICOM file, or each member of a ZIP."""
        self.report.parts += 1
        name = upload.original_name or ""
        try:
            prepared = await upload.prepare()
        except LightboxError as exc:  # not DICOM, or the disk filled up or failed while the last bytes were written
            await upload.abort()
            self._report(FileOutcome(name, error=exc))
            return
        except BaseException:
            await upload.abort()
            raise
        if prepared is None:
            self.report.archives += 1
            await self._store_archive(upload, name)
            return
        try:
            stored = await self.instances.commit(self.principal, prepared)
        except LightboxError as exc:
            self._report(FileOutcome(name, error=exc))
            return
        self._report(FileOutcome(name, stored=stored))

    async def _store_archive(self, upload: Upload, name: str) -> None:
        try:
            archive = await to_thread.run_sync(Archive, upload.staged.path, self.limits)
        except LightboxError as exc:
            await upload.abort()
            self._report(FileOutcome(name, error=exc))
            return
        try:
            for info in archive.members():
                if not self._room():
                    self._report(
                        FileOutcome(
                            info.filename, error=TooManyFiles(f"more than {self.max_files} files in one upload")
                        )
                    )
                    continue
                try:
                    staged = await to_thread.run_sync(archive.extract, info, self.instances.store)
                    stored = await self.instances.store_staged(self.principal, staged, info.filename)
                except LightboxError as exc:
                    self._report(FileOutcome(info.filename, error=exc))
                    continue
                self._report(FileOutcome(info.filename, stored=stored))
        finally:
            await to_thread.run_sync(archive.close)
            await upload.abort()  # the archive itself is never kept
