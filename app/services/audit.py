"""The audit trail: who saw or changed what, when, from where (issue 10; PS3.15 A.5 as the model).

Every access to patient data and every security event is recorded by the *service* that does it
(architecture rule 9), through :meth:`AuditService.record`: actor and actor type come from the
principal, client address and request id from the request context (:data:`app.logging.current_request`),
so services need no HTTP objects.

Writing is off the request path: ``record`` appends to a bounded in-memory queue (a list append and
one log line, ~µs) and a background task inserts the queue in one transaction every
``LIGHTBOX_AUDIT_FLUSH_SECONDS``, and at shutdown, after the last request. A single INSERT per request
would put a commit (an fsync on SQLite with ``synchronous=FULL``) on the path of every cached tag
lookup, which otherwise needs no I/O at all. When the queue is full (the database has been failing
for a while) access is refused (:class:`AuditUnavailable`, 503) rather than left unrecorded.
A process killed with SIGKILL loses at most one interval of rows; the log has each event already.

The same event goes to the JSON log (``"audit": true``) with action, outcome, actor and request id
only: names, UIDs and queries may be patient data and stay in the database, for administrators.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from app.auth import policy
from app.auth.principals import Principal
from app.errors import AuditUnavailable, Forbidden, InvalidRequest
from app.index.audit import AuditLog, AuditPage, AuditQuery, AuditRecord
from app.logging import HotLine, current_request, error_kind

log = logging.getLogger("lightbox.audit")

SHUTDOWN_FLUSH_ATTEMPTS = 5
#: Detail keys never stored, whatever a caller passes: credentials are not audit data.
SECRET_KEY = re.compile(r"pass|token|secret|^key$|api_?key|authori[sz]ation|cookie|csrf|credential", re.IGNORECASE)
#: API keys, login and share tokens (issue 10) are recognisable: a value that looks like one is never stored.
SECRET_PREFIXES = ("lbx_", "lbt_", "lbs_")
MAX_TEXT = {"actor": 128, "reason": 64, "study_instance_uid": 256, "name": 300, "client": 128, "request_id": 64}
MAX_DETAIL = 4096
#: PostgreSQL's text cannot hold NUL (U+0000): one in a record would fail its whole batch, every retry
#: (the trail would stall until access is refused). What callers typed is kept, NUL shown as U+FFFD.
NUL, NUL_SHOWN = "\x00", "\ufffd"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: Made once: ``json.dumps`` with options builds an encoder per call (a record is written per lookup).
_DETAIL_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class AtnaEvent:
    """The DICOM audit message an action corresponds to: EventID (PS3.16 CID 400) and EventActionCode."""

    code: str
    meaning: str
    action_code: str  # C create, R read, U update, D delete, E execute (PS3.15 A.5.3)


class Action(enum.StrEnum):
    """What was done. IHE ATNA / PS3.15 A.5.3 events where they fit (see :attr:`event`)."""

    LOGIN = "login"
    LOGOUT = "logout"
    UPLOAD = "upload"
    TAG = "tag"
    METADATA = "metadata"
    RENDER = "render"
    DOWNLOAD = "download"
    DELETE = "delete"
    LIST = "list"
    SHARE_CREATE = "share_create"
    SHARE_USE = "share_use"
    SHARE_REVOKE = "share_revoke"
    GRANT_CREATE = "grant_create"
    GRANT_REVOKE = "grant_revoke"
    USER_CREATE = "user_create"
    USER_UPDATE = "user_update"
    USER_DELETE = "user_delete"
    KEY_CREATE = "key_create"
    KEY_REVOKE = "key_revoke"
    AUDIT_READ = "audit_read"

    @property
    def event(self) -> AtnaEvent:
        return ATNA_EVENTS[self]


_AUTH = ("110114", "User Authentication")
_ACCESSED = ("110103", "DICOM Instances Accessed")
_TRANSFERRED = ("110104", "DICOM Instances Transferred")
_SECURITY = ("110113", "Security Alert")
ATNA_EVENTS: dict[Action, AtnaEvent] = {
    Action.LOGIN: AtnaEvent(*_AUTH, "E"),
    Action.LOGOUT: AtnaEvent(*_AUTH, "E"),
    Action.UPLOAD: AtnaEvent(*_TRANSFERRED, "C"),
    Action.TAG: AtnaEvent(*_ACCESSED, "R"),
    Action.METADATA: AtnaEvent(*_ACCESSED, "R"),
    Action.RENDER: AtnaEvent(*_ACCESSED, "R"),
    Action.DOWNLOAD: AtnaEvent(*_TRANSFERRED, "R"),
    Action.DELETE: AtnaEvent(*_ACCESSED, "D"),
    Action.LIST: AtnaEvent("110112", "Query", "E"),
    Action.SHARE_CREATE: AtnaEvent(*_SECURITY, "C"),
    Action.SHARE_USE: AtnaEvent(*_AUTH, "E"),
    Action.SHARE_REVOKE: AtnaEvent(*_SECURITY, "D"),
    Action.GRANT_CREATE: AtnaEvent(*_SECURITY, "C"),
    Action.GRANT_REVOKE: AtnaEvent(*_SECURITY, "D"),
    Action.USER_CREATE: AtnaEvent(*_SECURITY, "C"),
    Action.USER_UPDATE: AtnaEvent(*_SECURITY, "U"),
    Action.USER_DELETE: AtnaEvent(*_SECURITY, "D"),
    Action.KEY_CREATE: AtnaEvent(*_SECURITY, "C"),
    Action.KEY_REVOKE: AtnaEvent(*_SECURITY, "D"),
    Action.AUDIT_READ: AtnaEvent("110101", "Audit Log Used", "R"),
}


class Outcome(enum.StrEnum):
    """EventOutcomeIndicator (PS3.15 A.5.3) in words: denied = refused by policy, failure = any other error."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


Detail = Mapping[str, str | int | float | bool | None]


def _text(value: str) -> str:
    """``value`` storable by every index database (SQLite and PostgreSQL): NUL and lone surrogates (which no
    driver can encode as UTF-8; JSON's ``"\\ud800"`` makes one) replaced by U+FFFD."""
    if NUL in value:
        value = value.replace(NUL, NUL_SHOWN)
    return value if value.isascii() else _LONE_SURROGATE.sub(NUL_SHOWN, value)


def _clip(value: str | None, field: str) -> str | None:
    return None if value is None else _text(value[: MAX_TEXT[field]])


@functools.lru_cache(maxsize=256)
def _is_secret(key: str) -> bool:
    return SECRET_KEY.search(key) is not None


def _detail_text(detail: Detail | None) -> str | None:
    """The caller's own words as JSON (credentials dropped), or None.

    Remembered for the last few distinct details: a lookup's detail is one of few (``{"tag": ...}``),
    and building and encoding it was ~4 % of a cached lookup's CPU.
    """
    if not detail:
        return None
    try:
        # with each value's type: True, 1 and 1.0 are one key to a dict, not one JSON text
        return _detail_text_of(tuple((key, type(value), value) for key, value in detail.items()))
    except TypeError:  # a value that cannot be a cache key (typing rules it out; a caller may not)
        return _encode_detail(detail)


@functools.lru_cache(maxsize=512)
def _detail_text_of(items: tuple[tuple[str, type, str | int | float | bool | None], ...]) -> str | None:
    return _encode_detail({key: value for key, _, value in items})


def _encode_detail(detail: Detail) -> str | None:
    kept = {
        _text(key): _text(value) if isinstance(value, str) else value
        for key, value in detail.items()
        if value is not None
        and not _is_secret(key)
        and not (isinstance(value, str) and value.startswith(SECRET_PREFIXES))
    }
    return _DETAIL_JSON.encode(kept)[:MAX_DETAIL] if kept else None


class AuditService:
    """Record events (cheap, synchronous) and read them back (administrators only)."""

    def __init__(self, store: AuditLog, flush_seconds: float = 0.1, max_pending: int = 10_000) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self._pending: list[AuditRecord] = []
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._line = HotLine(log.name)  # one per recorded event: written without logging's per-record work

    # -- recording --------------------------------------------------------------------------
    def has_room(self) -> bool:
        """Whether :meth:`record` would accept a record now (the lean tag path asks first)."""
        return not self._closed and len(self._pending) < self.max_pending

    def record(
        self,
        principal: Principal,
        action: Action,
        outcome: Outcome = Outcome.SUCCESS,
        *,
        study_instance_uid: str | None = None,
        name: str | None = None,
        detail: Detail | None = None,
        reason: str | None = None,
    ) -> None:
        """Queue one record and log it; AuditUnavailable when it cannot be kept (the access must fail)."""
        context = current_request.get()
        record = AuditRecord(
            time_us=time.time_ns() // 1000,
            actor=_text(principal.name[: MAX_TEXT["actor"]]),
            actor_type=principal.actor_type.value,
            action=action.value,
            outcome=outcome.value,
            reason=_clip(reason, "reason"),
            study_instance_uid=_clip(study_instance_uid or None, "study_instance_uid"),
            name=_clip(name, "name"),
            client=_clip(context.client, "client") if context else None,
            request_id=_clip(context.request_id, "request_id") if context else None,
            detail=_detail_text(detail),
        )
        if not self.has_room():
            log.error("audit record refused (%s): the access is refused", "closed" if self._closed else "queue full")
            raise AuditUnavailable("the audit trail cannot record this access now: try again shortly")
        self._pending.append(record)
        self._line.info(
            f"audit {record.action} {record.outcome}",
            {
                "audit": True,
                "action": record.action,
                "outcome": record.outcome,
                "reason": record.reason,
                "actor": record.actor,
                "actor_type": record.actor_type,
                "client": record.client,
            },
        )
        self._signal()

    def failed(
        self,
        principal: Principal,
        action: Action,
        error: BaseException,
        *,
        study_instance_uid: str | None = None,
        name: str | None = None,
        detail: Detail | None = None,
    ) -> None:
        """Record ``error`` ending ``action``: Forbidden is a denial, anything else a failure with its kind."""
        outcome = Outcome.DENIED if isinstance(error, Forbidden) else Outcome.FAILURE
        self.record(
            principal,
            action,
            outcome,
            study_instance_uid=study_instance_uid,
            name=name,
            detail=detail,
            reason=error_kind(error),
        )

    @contextmanager
    def on_failure(
        self,
        principal: Principal,
        action: Action,
        *,
        study_instance_uid: str | None = None,
        name: str | None = None,
        detail: Detail | None = None,
    ) -> Iterator[None]:
        """``with audit.on_failure(p, Action.TAG, name=n): ...``: an exception inside is recorded, then re-raised."""
        try:
            yield
        except Exception as exc:
            if not isinstance(exc, AuditUnavailable):
                self.failed(principal, action, exc, study_instance_uid=study_instance_uid, name=name, detail=detail)
            raise

    def _signal(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    # -- writing ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Begin flushing in the background (in the app's lifespan)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task = asyncio.create_task(self._run(), name="lightbox-audit-flush")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_seconds)  # let a burst gather into one transaction
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # never let the writer die: records would pile up until access is refused
                log.warning("audit records not written yet (%s); retrying", error_kind(exc))
                self._wake.set()

    async def flush(self) -> None:
        """Write every queued record now, in one transaction; on failure they stay queued, in order."""
        async with self._flush_lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                await self.store.append(batch)
            except InvalidRequest:  # a record the database refuses would fail every retry of its batch
                await self._write_each(batch)
            except BaseException:
                self._pending[:0] = batch
                raise

    async def _write_each(self, batch: list[AuditRecord]) -> None:
        """Write the batch record by record: one the database refuses is dropped (its log line keeps it), so
        it never stalls the trail; if the database fails meanwhile, the unwritten rest stays queued, in order."""
        for position, record in enumerate(batch):
            try:
                await self.store.append([record])
            except InvalidRequest:
                log.error("an audit record the database refuses was dropped; the log holds it")
            except BaseException:
                self._pending[:0] = batch[position:]
                raise

    async def close(self) -> None:
        """Stop taking records and write the rest (after the last request, before the index closes)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        for attempt in range(SHUTDOWN_FLUSH_ATTEMPTS):
            try:
                await self.flush()
                return
            except Exception as exc:
                log.warning("audit flush at shutdown failed (%s), attempt %d", error_kind(exc), attempt + 1)
                await asyncio.sleep(0.2 * (attempt + 1))
        log.error("%d audit record(s) could not be written to the database; the log holds them", len(self._pending))

    # -- reading ----------------------------------------------------------------------------
    def _check_admin(self, principal: Principal, query: AuditQuery) -> None:
        try:
            policy.require_admin(principal)
        except Forbidden as error:
            self.failed(principal, Action.AUDIT_READ, error, detail=_query_detail(query))
            raise

    async def search(self, principal: Principal, query: AuditQuery) -> AuditPage:
        """Records matching ``query``, newest first, including those still queued in this process."""
        self._check_admin(principal, query)
        with self.on_failure(principal, Action.AUDIT_READ, detail=_query_detail(query)):
            await self.flush()
            page = await self.store.search(query)
        self.record(principal, Action.AUDIT_READ, detail=_query_detail(query))
        return page


def _query_detail(query: AuditQuery) -> Detail:
    return {
        "since_us": query.since_us,
        "until_us": query.until_us,
        "actor": query.actor,
        "study_instance_uid": query.study_instance_uid,
        "action": query.action,
        "limit": query.limit,
        "offset": query.offset,
    }
