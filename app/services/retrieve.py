"""Retrieval of stored instances as data sets (DIMSE C-GET), the receiver's transfer syntax in mind."""

from __future__ import annotations

from collections.abc import Set

from anyio import to_thread
from pydicom.dataset import Dataset

from app.auth.principals import Principal
from app.dicom.transcode import for_receiver
from app.services.instances import InstanceService


class RetrieveService:
    """Reads stored files for a principal who may see them (the index decides, as for every read)."""

    def __init__(self, instances: InstanceService) -> None:
        self.instances = instances

    async def dataset(self, principal: Principal, name: str, accepted: Set[str]) -> Dataset:
        """The stored file ``name`` as a data set in a transfer syntax from ``accepted`` (decoded if needed)."""
        path = await self.instances.file_path(principal, name)
        return await to_thread.run_sync(for_receiver, path, accepted)
