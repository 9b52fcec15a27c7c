"""The index tables (SQLAlchemy Core): patient -> study -> series -> instance, each row owned;
and the append-only audit trail (``audit_records``).

Portable SQL only (SQLite and PostgreSQL): no JSON operators, no dialect-specific upserts;
uniqueness is enforced by constraints so concurrent uploads cannot both insert.
The Alembic migrations in ``app/index/migrations`` create exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

patients = Table(
    "patients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("patient_id", String(256), nullable=False),  # (0010,0020)
    Column("patient_name", String(256), nullable=False),  # (0010,0010)
    Column("patient_birth_date", String(32), nullable=False),  # (0010,0030)
    UniqueConstraint("patient_id", "owner", name="uq_patients_owner_patient_id"),
)

studies = Table(
    "studies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("patient_pk", Integer, ForeignKey("patients.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("study_instance_uid", String(256), nullable=False),  # (0020,000D)
    Column("study_date", String(32), nullable=False, index=True),  # (0008,0020)
    Column("study_description", String(256), nullable=False),  # (0008,1030)
    Column("accession_number", String(256), nullable=False),  # (0008,0050)
    Column("modalities_in_study", String(256), nullable=False),  # (0008,0061), kept from the series
    # QIDO-RS study matching keys (PS3.18 Table 10.6.1-5), migration 0003
    Column("study_time", String(32), nullable=False, server_default=""),  # (0008,0030)
    Column("referring_physician_name", String(256), nullable=False, server_default=""),  # (0008,0090)
    Column("study_id", String(64), nullable=False, server_default=""),  # (0020,0010)
    UniqueConstraint("study_instance_uid", "owner", name="uq_studies_owner_study_uid"),
)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("study_pk", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("series_instance_uid", String(256), nullable=False),  # (0020,000E)
    Column("modality", String(64), nullable=False, index=True),  # (0008,0060)
    Column("series_number", Integer),  # (0020,0011)
    # QIDO-RS series matching keys (PS3.18 Table 10.6.1-5), migration 0003
    Column("series_description", String(256), nullable=False, server_default=""),  # (0008,103E)
    Column("pps_start_date", String(32), nullable=False, server_default=""),  # (0040,0244)
    Column("pps_start_time", String(32), nullable=False, server_default=""),  # (0040,0245)
    UniqueConstraint("series_instance_uid", "owner", name="uq_series_owner_series_uid"),
)

instances = Table(
    "instances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("series_pk", Integer, ForeignKey("series.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(300), nullable=False, unique=True),
    Column("sop_class_uid", String(256), nullable=False),  # (0008,0016)
    Column("sop_instance_uid", String(256), nullable=False),  # (0008,0018)
    Column("instance_number", Integer),  # (0020,0013)
    Column("rows", Integer),  # (0028,0010)
    Column("columns", Integer),  # (0028,0011)
    Column("number_of_frames", Integer),  # (0028,0008)
    Column("transfer_syntax_uid", String(256), nullable=False),  # (0002,0010)
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("uploaded_at_us", BigInteger, nullable=False),  # microseconds since the Unix epoch, UTC
    Column("header", Text, nullable=False),  # DICOM JSON (PS3.18 Annex F), see app.dicom.header_json
    Column("modality", String(64), nullable=False, server_default=""),  # the series' (0008,0060), for lists
    UniqueConstraint("sop_instance_uid", "owner", name="uq_instances_owner_sop_uid"),
    UniqueConstraint("sha256", "owner", name="uq_instances_owner_sha256"),
    Index("ix_instances_owner_uploaded", "owner", "uploaded_at_us", "id"),
    Index("ix_instances_uploaded", "uploaded_at_us", "id"),
    Index("ix_instances_modality_uploaded", "modality", "uploaded_at_us", "id"),
    Index("ix_instances_owner_modality_uploaded", "owner", "modality", "uploaded_at_us", "id"),
)

#: Facts about the index itself, by key. ``storage_id``: the id in the storage folder's marker file
#: (``.lightbox-storage``) this index was started with, so a start on an empty, unmounted or foreign
#: folder is recognised instead of being taken for a fresh one (see app.services.storage_guard).
index_state = Table(
    "index_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

# -- access control (migration 0004_access) ---------------------------------------------------------
# Secrets are never stored: login tokens, API keys and share tokens as the SHA-256 of a 256-bit random
# secret, passwords as argon2id hashes. Rows, not stateless tokens, so revocation is immediate.

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),  # app.auth.principals.Role
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created_at_us", BigInteger, nullable=False),
)

login_tokens = Table(
    "login_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("csrf_hash", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("scope", String(16), nullable=False),  # read, write, admin
    Column("secret_hash", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("expires_at_us", BigInteger),
    Column("last_used_at_us", BigInteger),
)

grants = Table(
    "grants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_instance_uid", String(256), nullable=False),  # (0020,000D)
    Column("grantor", String(128), ForeignKey("users.username", ondelete="CASCADE"), nullable=False),
    Column("grantee", String(128), ForeignKey("users.username", ondelete="CASCADE"), nullable=False),
    Column("access", String(8), nullable=False),  # read, write
    Column("created_at_us", BigInteger, nullable=False),
    UniqueConstraint("study_instance_uid", "grantor", "grantee", name="uq_grants_study_grantor_grantee"),
    Index("ix_grants_grantee_study", "grantee", "study_instance_uid"),
)

shares = Table(
    "shares",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("study_instance_uid", String(256), nullable=False),  # (0020,000D)
    Column("creator", String(128), ForeignKey("users.username", ondelete="CASCADE"), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
)

#: One row per audited event (app/services/audit.py). Append-only: migration 0006_audit adds
#: triggers that refuse UPDATE and DELETE. No foreign keys: a record outlives what it names.
audit_records = Table(
    "audit_records",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("time_us", BigInteger, nullable=False),  # microseconds since the Unix epoch, UTC
    Column("actor", String(128), nullable=False),
    Column("actor_type", String(16), nullable=False),  # app.auth.principals.ActorType
    Column("action", String(32), nullable=False),  # app.services.audit.Action
    Column("outcome", String(16), nullable=False),  # app.services.audit.Outcome
    Column("reason", String(64)),  # the error kind of a failure or denial
    Column("study_instance_uid", String(256)),  # (0020,000D)
    Column("name", String(300)),  # the stored name
    Column("client", String(128)),  # network address of the caller
    Column("request_id", String(64)),
    Column("detail", Text),  # JSON: what the caller asked (a list's query, the tag looked up)
    Index("ix_audit_records_time", "time_us", "id"),
    Index("ix_audit_records_actor_time", "actor", "time_us"),
    Index("ix_audit_records_study_time", "study_instance_uid", "time_us"),
    Index("ix_audit_records_action_time", "action", "time_us"),
)
