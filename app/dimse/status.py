"""The one table mapping domain errors to DIMSE status codes (PS3.7 C, PS3.4 B.2.3 and C.4).

A failed file answers a failure status with an Error Comment (0000,0902); the association goes on.
Comments carry the error's message, which never holds patient data (app/errors.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app import errors


class Operation(enum.Enum):
    STORE = "C-STORE"
    FIND = "C-FIND"
    GET = "C-GET"
    MOVE = "C-MOVE"


# PS3.4 B.2.3 (Storage), C.4.1.1.4 (C-FIND), C.4.3.1.4 (C-GET); PS3.7 C.4 general statuses.
SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00  # Cancel: sub-operations terminated (C-GET) / matching terminated (C-FIND)
OUT_OF_RESOURCES = 0xA700  # Refused: Out of Resources (storage)
GET_OUT_OF_RESOURCES = 0xA701  # Refused: Out of Resources - Unable to calculate number of matches
GET_SUB_OPERATIONS_FAILED = 0xA702  # Refused: Out of Resources - Unable to perform sub-operations
DATA_SET_MISMATCH = 0xA900  # Error: Data Set does not match SOP Class (storage) / Identifier does not match (Q/R)
CANNOT_UNDERSTAND = 0xC000  # Error: Cannot understand (storage); Failed: Unable to process (Q/R)
PROCESSING_FAILURE = 0x0110  # PS3.7 C.4.2: a failure not described by a more specific code
MOVE_DESTINATION_UNKNOWN = 0xA801  # C-MOVE Refused: Move Destination unknown (PS3.4 C.4.2.1.5)
SUB_OPERATIONS_WARNING = 0xB000  # C-GET: sub-operations complete, one or more failures or warnings
NOT_AUTHORISED = 0x0124  # PS3.7 C.4.3 Refused: Not Authorized


@dataclass(frozen=True)
class Failure:
    """The status of one failed operation, and what its Error Comment (0000,0902) says."""

    status: int
    comment: str


# error class -> status per operation (missing operation: the STORE column applies)
STATUS_BY_ERROR: dict[type[errors.LightboxError], dict[Operation, int]] = {
    errors.InvalidDicom: {Operation.STORE: CANNOT_UNDERSTAND},
    errors.InstanceConflict: {Operation.STORE: DATA_SET_MISMATCH},
    errors.InvalidRequest: {
        Operation.STORE: CANNOT_UNDERSTAND,
        Operation.FIND: DATA_SET_MISMATCH,
        Operation.GET: DATA_SET_MISMATCH,
    },
    errors.UploadTooLarge: {Operation.STORE: OUT_OF_RESOURCES},
    errors.StorageFull: {Operation.STORE: OUT_OF_RESOURCES},
    errors.StorageUnavailable: {Operation.STORE: OUT_OF_RESOURCES, Operation.GET: GET_SUB_OPERATIONS_FAILED},
    errors.IndexUnavailable: {Operation.STORE: OUT_OF_RESOURCES, Operation.GET: GET_OUT_OF_RESOURCES},
    errors.NotFound: {Operation.STORE: PROCESSING_FAILURE},
    errors.NotRenderable: {Operation.STORE: CANNOT_UNDERSTAND},
    errors.NotAuthenticated: {Operation.STORE: NOT_AUTHORISED},  # the peer's user unknown or disabled
    errors.Forbidden: {Operation.STORE: NOT_AUTHORISED},  # the policy refused the action
}
COMMENT_MAX = 64  # Error Comment is LO (PS3.7 E.1): at most 64 characters


def failure_for(error: Exception, operation: Operation) -> Failure:
    """The status of the most specific class of ``error`` in the table; 0xC000 (unable to process) otherwise."""
    if isinstance(error, errors.LightboxError):
        for cls in type(error).__mro__:
            row = STATUS_BY_ERROR.get(cls)
            if row is not None:
                column = Operation.GET if operation is Operation.MOVE else operation  # one retrieve column
                status = row.get(column, row[Operation.STORE])
                return Failure(status, _comment(error.message))
    return Failure(CANNOT_UNDERSTAND, "unexpected error")


def _comment(message: str) -> str:
    """Error Comment is LO: 64 characters, no backslash or control characters."""
    cleaned = "".join(c if " " <= c <= "~" and c != "\\" else " " for c in message)
    return cleaned[:COMMENT_MAX].rstrip()
