"""Domain errors. They describe what went wrong, never an HTTP status.

The one table that maps them to HTTP lives in :mod:`app.api.errors`.

    LightboxError
    ├── InvalidRequest          a parameter a person typed is malformed
    ├── Forbidden               the caller may see it but may not do this
    ├── NotFound
    │   ├── FileNotFound        no stored file has that name
    │   └── ElementNotFound     the file has no such element
    ├── InvalidDicom            the upload is not (readable) DICOM
    ├── InstanceConflict        another file with the same SOP Instance UID is stored
    ├── UploadTooLarge          the upload exceeds the configured limit
    ├── UploadTimedOut          the client stopped sending the body
    ├── TooManyFiles            a bulk upload or archive holds more files than allowed
    ├── NotRenderable           the file has no image we can show faithfully
    │   └── UnsupportedEncoding its transfer syntax / photometric cannot be decoded here
    ├── StorageFull             the storage device has no room left
    ├── StorageUnavailable      the storage cannot be written (read-only, missing)
    └── IndexUnavailable        the metadata index cannot be read or written
        └── AuditUnavailable    the audit trail cannot take the record (access refused: fail closed)
"""

from __future__ import annotations


class LightboxError(Exception):
    """Base of every error the service reports to a caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, str]:
        """Extra fields a caller needs besides the message (none by default)."""
        return {}


class InvalidRequest(LightboxError):
    """A query parameter or field is malformed."""


class Forbidden(LightboxError):
    """The caller may see the object but may not perform this action (architecture rule 8)."""


class NotFound(LightboxError):
    """Something named by the caller does not exist."""


class FileNotFound(NotFound):
    """No stored file has the requested name."""


class ElementNotFound(NotFound):
    """The stored file has no element with the requested tag."""


class InvalidDicom(LightboxError):
    """The uploaded bytes are not a DICOM file we can keep."""


class InstanceConflict(LightboxError):
    """A different file with the same SOP Instance UID (0008,0018) is already stored as ``name``."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name

    def details(self) -> dict[str, str]:
        return {"name": self.name}


class UploadTooLarge(LightboxError):
    """The upload is larger than ``LIGHTBOX_MAX_UPLOAD_BYTES``."""


class UploadTimedOut(LightboxError):
    """No body bytes arrived for ``LIGHTBOX_BODY_READ_TIMEOUT_SECONDS`` (a stalled or slow-loris client)."""


class TooManyFiles(LightboxError):
    """More files in one request or archive than ``LIGHTBOX_MAX_FILES_PER_UPLOAD`` allows."""


class NotRenderable(LightboxError):
    """The file holds no image that can be rendered faithfully."""


class UnsupportedEncoding(NotRenderable):
    """The pixel data is encoded in a way no installed decoder handles."""


class StorageFull(LightboxError):
    """The storage device ran out of space."""


class StorageUnavailable(LightboxError):
    """The storage folder cannot be written."""


class IndexUnavailable(LightboxError):
    """The metadata index failed (database unreachable, locked, or refusing the write)."""


class AuditUnavailable(IndexUnavailable):
    """The audit trail's queue is full or closed: access to patient data is refused rather than unrecorded."""
