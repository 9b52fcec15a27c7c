"""An upload's chunks wait in memory as received and are written by a worker thread in batches."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from app.auth.principals import LOCAL_ADMIN
from app.services.instances import MAX_PENDING_PARTS, InstanceService
from tests.conftest import sample

pytestmark = pytest.mark.anyio


async def test_tiny_chunks_wait_in_bounded_numbers_and_the_file_is_stored_whole(app: FastAPI) -> None:
    """Each chunk is an object of its own (~40 bytes more than its data): a client sending 2-byte chunks
    made a held megabyte cost ~22 MB. Now at most MAX_PENDING_PARTS chunks wait, whatever their size."""
    service: InstanceService = app.state.instances
    data = sample("CT_small.dcm").read_bytes()
    upload = await service.begin_upload("CT_small.dcm")
    for start in range(0, len(data), 2):
        await upload.write(data[start : start + 2])
        assert upload.received - upload.staged.size < 2 * MAX_PENDING_PARTS  # the rest is in the staged file
    prepared = await upload.prepare()
    assert prepared is not None
    stored = await service.commit(LOCAL_ADMIN, prepared)
    assert (await service.file_path(LOCAL_ADMIN, stored.name)).read_bytes() == data
