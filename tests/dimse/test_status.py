"""The domain error -> DIMSE status table (PS3.4 B.2.3, C.4)."""

from __future__ import annotations

import pytest

from app import errors
from app.dimse.status import Operation, failure_for


@pytest.mark.parametrize(
    ("error", "operation", "code"),
    [
        (errors.InvalidDicom("not DICOM"), Operation.STORE, 0xC000),
        (errors.InstanceConflict("another file has that UID", "x.dcm"), Operation.STORE, 0xA900),
        (errors.StorageFull("the storage device is full"), Operation.STORE, 0xA700),
        (errors.UploadTooLarge("too large"), Operation.STORE, 0xA700),
        (errors.StoredFileMissing(), Operation.STORE, 0xA700),
        (errors.IndexUnavailable("down"), Operation.STORE, 0xA700),
        (errors.InvalidRequest("bad level"), Operation.FIND, 0xA900),
        (errors.IndexUnavailable("down"), Operation.GET, 0xA701),
        (errors.InvalidRequest("bad level"), Operation.GET, 0xA900),
        (errors.InvalidRequest("bad level"), Operation.MOVE, 0xA900),
        (errors.StoredFileMissing(), Operation.GET, 0xA702),
        (RuntimeError("a bug"), Operation.STORE, 0xC000),
    ],
)
def test_each_error_has_its_status(error: Exception, operation: Operation, code: int) -> None:
    assert failure_for(error, operation).status == code


def test_the_comment_is_a_valid_lo_value() -> None:
    comment = failure_for(errors.InvalidDicom("bad\\value\nwith a very long explanation " + "x" * 80), Operation.STORE)
    assert len(comment.comment) <= 64 and "\\" not in comment.comment and "\n" not in comment.comment
    assert failure_for(RuntimeError("secret path /x"), Operation.STORE).comment == "unexpected error"
