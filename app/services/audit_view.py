"""How an audit record is shown, the same by ``GET /admin/audit`` and ``lightbox audit export``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.index.audit import AuditRecord

#: Fields of a record as the API and ``lightbox audit export`` show it, in order.
FIELDS = (
    "time",
    "actor",
    "actor_type",
    "action",
    "outcome",
    "reason",
    "study_instance_uid",
    "name",
    "client",
    "request_id",
    "detail",
)


def iso_time(time_us: int) -> str:
    """Microseconds since the epoch as ISO 8601 UTC: ``2026-12-02T06:47:31.123456Z`` (integer maths, exact)."""
    seconds, micros = divmod(time_us, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def time_us(moment: datetime) -> int:
    """A datetime as microseconds since the epoch; one without a zone is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def as_dict(record: AuditRecord) -> dict[str, Any]:
    """A record in :data:`FIELDS` order, ``detail`` as the JSON object it was stored as."""
    return {
        "time": iso_time(record.time_us),
        "actor": record.actor,
        "actor_type": record.actor_type,
        "action": record.action,
        "outcome": record.outcome,
        "reason": record.reason,
        "study_instance_uid": record.study_instance_uid,
        "name": record.name,
        "client": record.client,
        "request_id": record.request_id,
        "detail": json.loads(record.detail) if record.detail else None,
    }
