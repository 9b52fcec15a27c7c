"""Typed settings, read from ``LIGHTBOX_*`` environment variables.

Built inside :func:`app.main.create_app` (never at import time) so that tests and
embedders can pass their own :class:`Settings`.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import types
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

GiB = 1024**3
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def canonical_choice(value: Any, annotation: Any) -> Any:
    """The allowed spelling of an enumerated setting given in any case (``INFO`` -> ``info``).

    Operators write ``LOG_LEVEL=INFO`` as often as ``info``; the choices of a ``Literal`` (or a
    ``str`` Enum, optionally ``| None``) are matched ignoring case and surrounding blanks. Anything
    else is returned unchanged, for the field's own validation to accept or refuse.
    """
    if not isinstance(value, str):
        return value
    wanted = value.strip().casefold()
    for choice in _choices(annotation):
        if choice.casefold() == wanted:
            return choice
    return value


def _choices(annotation: Any) -> list[str]:
    origin = get_origin(annotation)
    if origin is Literal:
        return [a for a in get_args(annotation) if isinstance(a, str)]
    if origin in (Union, types.UnionType):
        return [choice for member in get_args(annotation) for choice in _choices(member)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [m.value for m in annotation if isinstance(m.value, str)]
    return []


def invalid_settings_line(exc: ValidationError | SettingsError) -> str:
    """One line naming the variable and the problem, never the value (it may be a secret)."""
    if isinstance(exc, SettingsError):
        return f"lightbox: invalid settings: {exc}".replace("\n", " ")
    problems = exc.errors(include_input=False, include_url=False)
    first = problems[0]
    where = f"LIGHTBOX_{str(first['loc'][0]).upper()}" if first.get("loc") else "settings"
    message = first["msg"].removeprefix("Value error, ")  # a validator's own words, as it wrote them
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"lightbox: invalid {where}: {message}{more}".replace("\n", " ")


def settings_from_environment() -> Settings:
    """The ``LIGHTBOX_*`` settings, or exit code 2 with one line on stderr.

    Every way of starting the service (``lightbox``, ``python -m app``, ``uvicorn app.main:app``)
    comes through here, so an invalid setting reads the same everywhere and no pydantic traceback
    reaches an operator.
    """
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as exc:
        print(invalid_settings_line(exc), file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    exposed = exposure_problem(settings)
    if exposed:
        print(f"lightbox: {exposed}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    return settings


class Settings(BaseSettings):
    """Every knob of the service in one validated object."""

    model_config = SettingsConfigDict(env_prefix="LIGHTBOX_", extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _enumerations_ignore_case(cls, value: Any, info: ValidationInfo) -> Any:
        """Every enumerated setting, present and future, accepts its choices in any case."""
        field = cls.model_fields.get(info.field_name or "")
        return canonical_choice(value, field.annotation) if field else value

    storage_dir: Path = Field(Path("uploads"), description="Folder holding the stored DICOM files.")
    host: str = Field("127.0.0.1", description="Interface the server listens on.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port the server listens on.")
    max_upload_bytes: int = Field(GiB, gt=0, description="Largest accepted upload body, in bytes.")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="Log level of the service and of uvicorn."
    )
    max_pixels: int = Field(
        512 * 1024 * 1024,
        gt=0,
        description="Largest rows x columns x frames x samples a file may declare before a render is refused"
        " (for video, whose frames are decoded one at a time: rows x columns x samples).",
    )
    png_compress_level: int = Field(
        1, ge=0, le=9, description="zlib level of rendered PNGs (1 = fast, large; 6 = Pillow's default)."
    )
    header_cache_entries: int = Field(
        256, ge=0, description="How many parsed headers are kept in memory for tag lookups."
    )
    inline_binary_max_bytes: int = Field(
        64 * 1024, ge=0, description="Binary values up to this size are returned inline (base64) by ?tag=."
    )
    max_inflated_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="Largest size a deflated data set may inflate to on upload."
    )
    render_threads: int = Field(2, ge=1, description="Renders that may run at once (each uses one core).")
    render_cache_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Memory for rendered images kept for repeated views (encoded bytes; 0 turns the cache off).",
    )
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality of ?jpeg renders when none is asked for.")
    isolate_decoders: bool = Field(
        True,
        description="Decode compressed pixel data in worker processes, so a decoder crash cannot stop the service.",
    )
    decode_timeout_seconds: float = Field(
        10.0, gt=0, description="A render of compressed pixel data running longer than this is stopped (422)."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the index (sqlite:///..., postgresql://...); default <storage>/index.sqlite3"
        " (required with s3:// storage).",
    )
    storage_url: str | None = Field(
        None,
        max_length=1024,
        description="Where stored files live: file:///path (default: LIGHTBOX_STORAGE_DIR) or s3://bucket/prefix.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://[^/?#\s]+/?$",
        description="Endpoint of a non-AWS S3-compatible store (http://host:port works); credentials and region"
        " from the standard AWS_* variables.",
    )
    staging_dir: Path | None = Field(
        None,
        description="Local folder uploads are staged and validated in before they are stored; default"
        " <storage>/.staging, or <temp>/lightbox-staging with s3:// storage.",
    )
    blob_cache_dir: Path | None = Field(
        None,
        description="Local folder of the read-through cache of s3:// objects (one per replica);"
        " default <temp>/lightbox-blob-cache-<uid>.",
    )
    blob_cache_bytes: int = Field(
        2 * GiB, ge=1024 * 1024, description="Disk the blob cache may use (least recently read files go first)."
    )
    max_files_per_upload: int = Field(
        1000, ge=1, description="Most files one POST /upload may carry (file parts plus ZIP members)."
    )
    zip_max_members: int = Field(10_000, ge=1, description="Most entries a ZIP archive may list.")
    zip_max_total_bytes: int = Field(
        4 * GiB, gt=0, description="Largest total uncompressed size of a ZIP archive's members, in bytes."
    )
    zip_max_ratio: int = Field(
        200, ge=1, description="Largest uncompressed/compressed size ratio of a ZIP member (zip-bomb guard)."
    )
    answer_cache_entries: int = Field(
        20_000, ge=0, description="Tag lookup answers kept in memory (per worker process)."
    )
    answer_cache_seconds: float = Field(
        2.0, ge=0, description="How long a cached tag answer is trusted before the index is asked again."
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="Log lines as JSON objects or readable text; auto = JSON unless stdout is a terminal."
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=256,
        description="Worker processes `lightbox` starts (default: the number of CPU cores).",
    )
    keep_alive_seconds: int = Field(
        75,
        gt=0,
        le=3600,
        description="How long an idle keep-alive connection is kept open; longer than a load balancer's idle"
        " timeout (nginx 60 s, AWS ALB 60 s), so the server never closes a connection the balancer is reusing.",
    )
    shutdown_timeout: int = Field(
        25,
        gt=0,
        le=3600,
        description="Seconds in-flight requests get to finish after SIGTERM before they are cancelled.",
    )
    readiness_timeout: float = Field(
        2.0, gt=0, le=60, description="Seconds each /readyz check may take before it counts as failed."
    )
    body_read_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="An upload whose client sends nothing for this long is stopped (408)."
    )
    dimse_port: int | None = Field(
        None, ge=1, le=65535, description="TCP port of the DICOM network listener (C-ECHO/STORE/FIND/GET); unset = off."
    )
    dimse_host: str = Field("127.0.0.1", description="Interface the DICOM network listener binds.")
    dimse_ae_title: str = Field(
        "LIGHTBOX", min_length=1, max_length=16, description="The listener's own AE title (called AE title)."
    )
    dimse_peers: str = Field(
        "",
        description="Known calling AEs, comma-separated `AE@address:user` (the address they must call from, "
        "the Lightbox user they act as).",
    )
    dimse_destinations: str = Field(
        "", description="C-MOVE destinations, comma-separated `AE@host:port` (where a Move Destination AE is)."
    )
    dimse_accept_any: bool = Field(
        False, description="Accept any calling AE title (acting as the local administrator); loopback only."
    )
    dimse_max_associations: int = Field(
        10, ge=1, le=1000, description="Most DICOM associations served at once; more are rejected (busy)."
    )
    dimse_max_pdu_bytes: int = Field(
        65536, ge=4096, le=16 * 1024 * 1024, description="Largest P-DATA PDU the listener receives, in bytes."
    )
    dimse_acse_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds a peer has to complete association set-up or release."
    )
    dimse_dimse_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds a DIMSE message or reply may take before the association aborts."
    )
    dimse_idle_timeout: float = Field(
        60.0, gt=0, le=3600, description="An association silent for this many seconds is aborted."
    )
    dimse_tls_cert: Path | None = Field(
        None, description="PEM certificate (chain) of the DICOM listener: with the key, it speaks DICOM TLS (PS3.15 B)."
    )
    dimse_tls_key: Path | None = Field(None, description="PEM private key of LIGHTBOX_DIMSE_TLS_CERT.")
    dimse_tls_ca: Path | None = Field(
        None, description="PEM CA certificates: peers must present a certificate they signed (mutual TLS)."
    )

    @field_validator("dimse_peers")
    @classmethod
    def _peers_parse(cls, value: str) -> str:
        from app.dimse.peers import parse_peers  # pure parsing; no pynetdicom import

        parse_peers(value)
        return value

    @field_validator("dimse_destinations")
    @classmethod
    def _destinations_parse(cls, value: str) -> str:
        from app.dimse.peers import parse_destinations

        parse_destinations(value)
        return value

    @model_validator(mode="after")
    def _accept_any_only_on_loopback(self) -> Settings:
        """Any calling AE acts as the administrator: never offered beyond this machine."""
        if self.dimse_accept_any and not is_loopback(self.dimse_host):
            raise ValueError("LIGHTBOX_DIMSE_ACCEPT_ANY=true needs a loopback LIGHTBOX_DIMSE_HOST")
        if self.dimse_accept_any and self.auth_required:
            raise ValueError("LIGHTBOX_DIMSE_ACCEPT_ANY=true (peers act as the administrator) is single-user mode only")
        return self

    @model_validator(mode="after")
    def _one_storage_place(self) -> Settings:
        """STORAGE_URL and STORAGE_DIR must not disagree; s3:// needs a database that is not a local file."""
        if self.storage_url is None:
            return self
        where = parse_storage_url(self.storage_url)
        given_dir = "storage_dir" in self.model_fields_set
        if isinstance(where, Path):
            if given_dir and self.storage_dir.resolve() != where.resolve():
                raise ValueError("LIGHTBOX_STORAGE_DIR and LIGHTBOX_STORAGE_URL name different places: set one")
            self.storage_dir = where
            return self
        if given_dir:
            raise ValueError("LIGHTBOX_STORAGE_DIR and LIGHTBOX_STORAGE_URL name different places: set one")
        if self.database_url is None:
            raise ValueError(
                "LIGHTBOX_STORAGE_URL=s3://... needs LIGHTBOX_DATABASE_URL (the index is not kept on local disk)"
            )
        return self

    @model_validator(mode="after")
    def _tls_needs_cert_and_key(self) -> Settings:
        if (self.dimse_tls_cert is None) != (self.dimse_tls_key is None):
            raise ValueError("LIGHTBOX_DIMSE_TLS_CERT and LIGHTBOX_DIMSE_TLS_KEY are set together or not at all")
        if self.dimse_tls_ca is not None and self.dimse_tls_cert is None:
            raise ValueError("LIGHTBOX_DIMSE_TLS_CA needs LIGHTBOX_DIMSE_TLS_CERT and LIGHTBOX_DIMSE_TLS_KEY")
        for name in ("dimse_tls_cert", "dimse_tls_key", "dimse_tls_ca"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"LIGHTBOX_{name.upper()} names no readable file")
        return self

    auth_required: bool = Field(
        False,
        description="Every call needs credentials (users, API keys, share links); off: single-user mode on loopback.",
    )
    admin_password: SecretStr | None = Field(
        None, description="Password of the `admin` user created at the first start with auth (unset: generated)."
    )
    session_seconds: int = Field(
        12 * 3600, ge=60, le=90 * 24 * 3600, description="Lifetime of a login token (and its cookie), in seconds."
    )
    share_max_seconds: int = Field(
        30 * 24 * 3600, ge=60, le=10 * 365 * 24 * 3600, description="Longest lifetime a share link may be given."
    )
    dicomweb_root: str = Field(
        "/dicom-web",
        pattern=r"^(/[A-Za-z0-9._~-]+)+$",
        description="Path prefix of the DICOMweb services (STOW-RS, QIDO-RS, WADO-RS, WADO-URI).",
    )
    metadata_cache_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="Memory for WADO-RS metadata kept per instance for repeated series views (0 turns it off).",
    )
    cors_origins: str | None = Field(
        None,
        max_length=4096,
        description="Comma-separated exact origins (https://viewer.example.org) browsers may call from; '*' refused.",
    )
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        description="Base URL clients reach the service at (behind a proxy); RetrieveURLs are built from it.",
    )
    audit_flush_seconds: float = Field(
        0.1, gt=0, le=10, description="Audit records are written to the database in one batch this often."
    )
    audit_queue_records: int = Field(
        10_000,
        ge=1,
        description="Audit records a worker may hold unwritten; when full, access to patient data is refused (503).",
    )

    sweep_interval_seconds: float = Field(
        600.0,
        ge=0,
        description="How often each replica offers to sweep orphaned blobs (one at a time, claimed through the "
        "database); 0 = never in the background (`lightbox sweep` still does).",
    )
    sweep_min_age_seconds: float = Field(
        3600.0,
        ge=0,
        description="A blob without an index row is removed by the sweeper only when older than this (uploads in "
        "flight are younger).",
    )

    grpc_port: int | None = Field(
        None, ge=1, le=65535, description="TCP port of the gRPC API (lightbox.v1.Lightbox); unset: no gRPC."
    )
    grpc_host: str = Field(
        "127.0.0.1", description="Interface the gRPC API listens on (beyond loopback only with auth required)."
    )
    grpc_tls_cert: Path | None = Field(None, description="PEM certificate chain: the gRPC API serves TLS.")
    grpc_tls_key: Path | None = Field(None, description="PEM private key of LIGHTBOX_GRPC_TLS_CERT.")

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        """A TLS certificate is served with its key: one without the other is a mistake, not plain text."""
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("LIGHTBOX_GRPC_TLS_CERT and LIGHTBOX_GRPC_TLS_KEY go together: set both or neither")
        return self

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: str | None) -> str | None:
        """Credentials (Authorization) cross origins only to origins named exactly: a wildcard would hand
        every web page the caller's access (Fetch standard, CORS protocol and credentials)."""
        for origin in cors_list(value):
            if origin == "*" or not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
                raise ValueError(
                    f"LIGHTBOX_CORS_ORIGINS takes exact origins such as https://viewer.example.org, not {origin[:80]!r}"
                )
        return value


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix``: the bucket and the key prefix (no leading or trailing ``/``) of stored objects."""

    bucket: str
    prefix: str


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3 bucket naming rules
_PREFIX = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def parse_storage_url(url: str) -> Path | S3Location:
    """``file:///path`` -> the folder; ``s3://bucket/prefix`` -> :class:`S3Location`; anything else refused."""
    parts = urlsplit(url.strip())
    if parts.query or parts.fragment:
        raise ValueError("LIGHTBOX_STORAGE_URL takes no query or fragment")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError("LIGHTBOX_STORAGE_URL=file:// takes an absolute path: file:///srv/lightbox")
        return Path(unquote(parts.path))
    if parts.scheme == "s3":
        prefix = parts.path.strip("/")
        if not _BUCKET.match(parts.netloc) or (prefix and not _PREFIX.match(prefix)):
            raise ValueError("LIGHTBOX_STORAGE_URL=s3:// takes s3://bucket/prefix (letters, digits, . _ - and /)")
        return S3Location(parts.netloc, prefix)
    raise ValueError("LIGHTBOX_STORAGE_URL is file:///path or s3://bucket/prefix")


def s3_location(settings: Settings) -> S3Location | None:
    """Where stored files live when they live in an object store; None for the local folder."""
    if settings.storage_url is None:
        return None
    where = parse_storage_url(settings.storage_url)
    return where if isinstance(where, S3Location) else None


def staging_dir(settings: Settings) -> Path:
    """Where uploads are staged: the setting, else beside the folder's files (same file system), else temp."""
    if settings.staging_dir is not None:
        return settings.staging_dir
    if s3_location(settings) is None:
        return settings.storage_dir / ".staging"
    return Path(tempfile.gettempdir()) / f"lightbox-staging-{os.getuid()}"


def blob_cache_dir(settings: Settings) -> Path:
    """The read-through cache of object-store blobs (not used with the local folder)."""
    if settings.blob_cache_dir is not None:
        return settings.blob_cache_dir
    return Path(tempfile.gettempdir()) / f"lightbox-blob-cache-{os.getuid()}"


def cors_list(value: str | None) -> list[str]:
    """The origins of ``LIGHTBOX_CORS_ORIGINS``, without trailing slashes."""
    return [origin.strip().rstrip("/") for origin in (value or "").split(",") if origin.strip()]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``: reachable only from this machine."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def exposure_problem(settings: Settings) -> str | None:
    """Rule 7: listening beyond loopback without authentication is refused (patient data on the network).

    The same for every listener: HTTP, gRPC and the DICOM network listener."""
    if settings.auth_required:
        return None
    if settings.grpc_port is not None and not is_loopback(settings.grpc_host):
        return (
            f"LIGHTBOX_GRPC_HOST={settings.grpc_host} is beyond loopback and LIGHTBOX_AUTH_REQUIRED=false: "
            "set LIGHTBOX_AUTH_REQUIRED=true (or listen on 127.0.0.1)"
        )
    if not is_loopback(settings.host):
        return (
            f"LIGHTBOX_HOST={settings.host} is beyond loopback and LIGHTBOX_AUTH_REQUIRED=false: "
            "set LIGHTBOX_AUTH_REQUIRED=true (or listen on 127.0.0.1)"
        )
    if settings.dimse_port is not None and not is_loopback(settings.dimse_host):
        return (
            f"LIGHTBOX_DIMSE_HOST={settings.dimse_host} is beyond loopback and LIGHTBOX_AUTH_REQUIRED=false: "
            "set LIGHTBOX_AUTH_REQUIRED=true (or let the DICOM listener bind 127.0.0.1)"
        )
    return None
