"""Domain errors. They describe what went wrong, never an HTTP status.

The one table that maps them to HTTP lives in :mod:`app.api.errors`.

    LightboxError
    ├── InvalidRequest          a parameter a person typed is malformed
    ├── NotAuthenticated        credentials are missing, wrong, expired or revoked
    ├── Forbidden               the caller sees the object but may not do this to it
    ├── TooManyAttempts         too many failed logins: wait ``retry_after`` seconds
    ├── Conflict                the name is taken (a user name, a grant that exists)
    ├── NotFound
    │   ├── FileNotFound        no stored file has that name
    │   └── ElementNotFound     the file has no such element
    ├── InvalidDicom            the upload is not (readable) DICOM
    ├── InstanceConflict        another file with the same SOP Instance UID is stored
    ├── UploadTooLarge          the upload exceeds the configured limit
    ├── UploadTimedOut          the client stopped sending the body
    ├── TooManyFiles            a bulk upload or archive holds more files than allowed
    ├── NotAcceptable           no representation the client accepts can be produced
    ├── UnsupportedMediaType    the request body is not of a media type the service takes
    ├── NotRenderable           the file has no image we can show faithfully
    │   ├── MalformedElement    an image-describing element (Rows, Window Center, ...) is unusable
    │   └── UnsupportedEncoding its transfer syntax / photometric cannot be decoded here
    ├── StorageFull             the storage device has no room left
    ├── StorageUnavailable      the storage cannot be written (read-only, missing)
    │   ├── StoredFileMissing   an indexed file's bytes are not in storage (deleted, or not mounted)
    │   └── StorageLooksWrong   the storage folder looks unmounted or is not this index's storage
    └── IndexUnavailable        the metadata index cannot be read or written
        ├── IndexNeedsWrite     the index needs a write (migration, creation) but its folder is read-only
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


class NotAuthenticated(LightboxError):
    """Authentication is required and the request carries no valid credentials."""


class Forbidden(LightboxError):
    """The caller may see the object (or use the service) but not perform this action."""


class TooManyAttempts(LightboxError):
    """Login failures for this user name or client address exceeded the limit; ``retry_after`` seconds to wait."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(LightboxError):
    """The thing to create already exists (a user name)."""


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


class NotAcceptable(LightboxError):
    """None of the media types or transfer syntaxes the client accepts can be produced (PS3.18 §8.7)."""


class UnsupportedMediaType(LightboxError):
    """The request body's media type is not one the service takes (STOW-RS wants application/dicom)."""


class NotRenderable(LightboxError):
    """The file holds no image that can be rendered faithfully."""


class MalformedElement(NotRenderable):
    """An image-describing element's value cannot be used (PS3.5 6.2: wrong VR, length or text); the message names it.

    Its message is its only state, so it crosses the decode sandbox's process boundary intact.
    """


class UnsupportedEncoding(NotRenderable):
    """The pixel data is encoded in a way no installed decoder handles."""


class StorageFull(LightboxError):
    """The storage device ran out of space."""


class StorageUnavailable(LightboxError):
    """The storage folder cannot be written."""


class StoredFileMissing(StorageUnavailable):
    """The index holds the instance but its file is not in storage.

    Not a 404: the row is the evidence that the instance exists; the bytes are unreachable (a volume
    not mounted, a file deleted behind the service). ``lightbox check`` lists these rows.
    """

    def __init__(self, message: str = "the stored file is missing from storage") -> None:
        super().__init__(message)


class StorageLooksWrong(StorageUnavailable):
    """The storage folder is empty while the index holds rows, or its marker is absent or foreign."""


class IndexUnavailable(LightboxError):
    """The metadata index failed (database unreachable, locked, or refusing the write)."""


class IndexNeedsWrite(IndexUnavailable):
    """The index must be written before it can serve (a migration, its creation, an unclean WAL to
    recover) but lives in a read-only folder: the service cannot start."""


class AuditUnavailable(IndexUnavailable):
    """The audit trail's queue is full or closed: access to patient data is refused rather than unrecorded."""
