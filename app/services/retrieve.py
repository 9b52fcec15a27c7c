"""DIMSE retrieve (C-GET, C-MOVE; PS3.4 C.4.2, C.4.3): the instances a request names, as data sets
in a transfer syntax the receiver accepted.

The index decides what the principal sees (the same visibility as every read). Each instance sent
is one ``download`` audit record (rule 9) with the operation in its detail, as a file download is.
A file the receiver cannot take as stored is re-encoded by :func:`app.dicom.transcode.to_explicit_little`,
compressed data in the decode sandbox, as WADO-RS does.
"""

from __future__ import annotations

from collections.abc import Set
from io import BytesIO

from anyio import to_thread
from pydicom import dcmread
from pydicom.dataset import Dataset

from app.auth.principals import Principal
from app.dicom.transcode import needs_decoding
from app.errors import FileNotFound
from app.index.base import FindMatch, FindQuery
from app.services.audit import Action
from app.services.instances import InstanceService
from app.services.renders import RenderService


class RetrieveService:
    """Reads stored files for a principal who may see them, for a receiver's accepted syntaxes."""

    def __init__(self, instances: InstanceService, renders: RenderService) -> None:
        self.instances = instances
        self.renders = renders

    async def matches(self, principal: Principal, query: FindQuery, operation: str) -> list[FindMatch]:
        """The visible instances a retrieve identifier names. A failure here, or nothing visible to send,
        is one failed ``download`` record (``file_not_found``, as a download of an invisible file is)."""
        detail = {"dimse": operation}
        study = query.study_instance_uids[0] if len(query.study_instance_uids) == 1 else None
        with self.instances.audit.on_failure(principal, Action.DOWNLOAD, detail=detail):
            found = await self.instances.index.find(principal, query)
        if not found:
            nothing = FileNotFound("no stored instance the caller may see matches the identifier")
            self.instances.audit.failed(principal, Action.DOWNLOAD, nothing, study_instance_uid=study, detail=detail)
        return found

    async def dataset(self, principal: Principal, match: FindMatch, accepted: Set[str], operation: str) -> Dataset:
        """The stored file of ``match`` as a data set in a transfer syntax from ``accepted`` (decoded if needed)."""
        detail = {"dimse": operation}
        with self.instances.audit.on_failure(principal, Action.DOWNLOAD, name=match.name, detail=detail):
            study = await self.instances.index.study_uid(principal, match.name)
            if needs_decoding(match.transfer_syntax_uid, accepted):
                data = await self.renders.explicit_little(match.name)
                dataset = await to_thread.run_sync(dcmread, BytesIO(data))
            else:
                dataset = await to_thread.run_sync(dcmread, await self.instances.stored_path(match.name))
        self.instances.audit.record(
            principal, Action.DOWNLOAD, study_instance_uid=study, name=match.name, detail=detail
        )
        return dataset
