"""pynetdicom event handlers: who is calling, then one service call per DIMSE request.

They run in pynetdicom's association threads; every service call is a coroutine run on the app's
event loop (``asyncio.run_coroutine_threadsafe``), so the index and storage are used exactly as by
the HTTP routes. No SQL, no policy and no DICOM validation here: the service and
:mod:`app.dicom` decide; :mod:`app.dimse.status` turns their errors into status codes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from pydicom.dataset import Dataset
from pynetdicom import build_context, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event, InterventionEvent, NotificationEvent
from pynetdicom.presentation import PresentationContext

from app.auth.principals import LOCAL_ADMIN, Principal
from app.dicom.part10 import file_meta
from app.dicom.query import find_query, find_response, query_level
from app.dimse import status
from app.dimse.peers import Destination, Peer
from app.errors import LightboxError
from app.index.base import FindMatch, QueryLevel
from app.logging import RequestContext, current_request
from app.metrics import Metrics
from app.services.instances import InstanceService
from app.services.retrieve import RetrieveService

log = logging.getLogger("lightbox.dimse")
T = TypeVar("T")

Binding = (
    tuple[NotificationEvent | InterventionEvent, Callable[..., Any]]
    | tuple[NotificationEvent | InterventionEvent, Callable[..., Any], list[Any]]
)

#: Resolves the Lightbox user a peer acts as (the user part of ``AE@address:user``) to a Principal:
#: :meth:`app.services.users.UserService.acting_as` (NotAuthenticated for an unknown or disabled user).
PrincipalResolver = Callable[[str], Awaitable[Principal]]

# SOP classes served (PS3.4 A, C.6.1, C.6.2; UIDs from PS3.6 A)
VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
FIND_LEVELS: dict[str, tuple[QueryLevel, ...]] = {
    STUDY_ROOT_FIND: (QueryLevel.STUDY, QueryLevel.SERIES, QueryLevel.IMAGE),
    PATIENT_ROOT_FIND: (QueryLevel.PATIENT,),
}
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
RETRIEVE_LEVELS = (QueryLevel.STUDY, QueryLevel.SERIES, QueryLevel.IMAGE)


@dataclass(frozen=True)
class CallerRules:
    """Who may associate: the known peers, or anyone (loopback only, checked by the settings)."""

    peers: dict[str, Peer]
    accept_any: bool

    def refusal(self, ae_title: str, address: str) -> str | None:
        """Why an association request is refused, or None to accept it."""
        peer = self.peers.get(ae_title.strip())
        if peer is None:
            return None if self.accept_any else "calling AE title not recognised"
        if not peer.calls_from(address):
            return "calling AE title not recognised from this address"
        return None


class Handlers:
    """The listener's event handlers, bound to one app's services and event loop."""

    def __init__(
        self,
        instances: InstanceService,
        retrieve: RetrieveService,
        rules: CallerRules,
        destinations: dict[str, Destination],
        resolve: PrincipalResolver,
        loop: asyncio.AbstractEventLoop,
        metrics: Metrics,
    ) -> None:
        self.instances = instances
        self.retrieve = retrieve
        self.rules = rules
        self.destinations = destinations
        self.resolve = resolve
        self.loop = loop
        self.metrics = metrics

    def bindings(self) -> list[Binding]:
        return [
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_C_GET, self.on_get),
            (evt.EVT_C_MOVE, self.on_move),
        ]

    def _run(self, work: Awaitable[T], event: Event | None = None) -> T:
        """Run ``work`` on the app's event loop and wait for it (this is an association thread).

        With ``event``, the work runs as one request of the peer's (its address and a request id),
        so audit records and log lines name the client as they do for HTTP.
        """
        context = _request_context(event) if event is not None else None
        return asyncio.run_coroutine_threadsafe(_awaited(work, context), self.loop).result()

    def _principal(self, event: Event) -> Principal:
        peer = self.rules.peers.get(event.assoc.requestor.ae_title.strip())
        if peer is None:  # accepted only under LIGHTBOX_DIMSE_ACCEPT_ANY (loopback)
            return LOCAL_ADMIN
        return self._run(self.resolve(peer.user), event)

    def _count(self, operation: str, code: int) -> None:
        self.metrics.dimse_operations.labels(operation, f"0x{code:04X}").inc()

    # -- association (PS3.8 7.1.1.9: A-ASSOCIATE-RJ reasons) ------------------------------
    def on_requested(self, event: Event) -> None:
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        calling = str(primitive.calling_ae_title if primitive is not None else "").strip()
        address = str(assoc.requestor.address)
        reason = self.rules.refusal(calling, address)
        peer = self.rules.peers.get(calling)
        if reason is None and peer is not None:
            try:
                self._run(self.resolve(peer.user))
            except LightboxError:  # with auth: the user it acts as is unknown or disabled
                reason = "the user this peer acts as is unknown or disabled"
        if reason is None:
            self.metrics.dimse_associations.labels("accepted").inc()
            log.info("DICOM association from %s at %s", calling, address)
            return
        self.metrics.dimse_associations.labels("rejected").inc()
        log.warning("DICOM association refused: %s (%s at %s)", reason, calling, address)
        assoc.acse.send_reject(0x01, 0x01, 0x03)  # rejected-permanent, service-user, calling AE not recognised
        assoc.is_rejected = True
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    # -- Verification (PS3.4 A) ------------------------------------------------------------
    def on_echo(self, _event: Event) -> int:
        self._count("C-ECHO", status.SUCCESS)
        return status.SUCCESS

    # -- Storage (PS3.4 B) -----------------------------------------------------------------
    def on_store(self, event: Event) -> Dataset:
        request = cast(C_STORE, event.request)
        sop_class, sop_instance = str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID)
        answer = Dataset()
        try:
            principal = self._principal(event)
            syntax = str(event.context.transfer_syntax)
            meta = file_meta(sop_class, sop_instance, syntax, event.assoc.requestor.ae_title)
            data = request.DataSet.getvalue() if request.DataSet is not None else b""
            self._run(self.instances.store_bytes(principal, (meta, data), f"{sop_instance}.dcm"), event)
        except LightboxError as exc:
            failure = status.failure_for(exc, status.Operation.STORE)
            log.warning("C-STORE failed with 0x%04X: %s", failure.status, failure.comment)
            answer.Status, answer.ErrorComment = failure.status, failure.comment
        else:
            answer.Status = status.SUCCESS
        self._count("C-STORE", int(answer.Status))
        return answer

    # -- Query (PS3.4 C.4.1) ---------------------------------------------------------------
    def on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        code = status.SUCCESS
        try:
            identifier = event.identifier
            levels = FIND_LEVELS.get(str(event.request.AffectedSOPClassUID), ())
            query = find_query(identifier, query_level(identifier, levels))
            principal = self._principal(event)
            matches = self._run(self.instances.find(principal, query), event)
        except LightboxError as exc:
            failure = status.failure_for(exc, status.Operation.FIND)
            self._count("C-FIND", failure.status)
            yield failure.status, _comment(failure)
            return
        for match in matches:
            if event.is_cancelled:
                code = status.CANCEL
                break
            yield status.PENDING, find_response(identifier, match)
        self._count("C-FIND", code)
        yield code, None

    # -- Retrieve (PS3.4 C.4.2 C-MOVE, C.4.3 C-GET) ---------------------------------------
    def _matches(self, event: Event, operation: status.Operation) -> tuple[Principal, list[FindMatch]]:
        """The instances a retrieve names (at its study, series or instance level) and the caller may see."""
        identifier = event.identifier
        query = find_query(identifier, query_level(identifier, RETRIEVE_LEVELS))
        query = replace(query, level=QueryLevel.IMAGE)  # whatever the level, instances are sent
        principal = self._principal(event)
        return principal, self._run(self.retrieve.matches(principal, query, operation.value), event)

    def _send(
        self,
        event: Event,
        operation: status.Operation,
        principal: Principal,
        matches: list[FindMatch],
        receiver: Callable[[], Association | None],
    ) -> Iterator[tuple[int, Dataset | None]]:
        """Each match as a data set in a syntax the receiver accepted; a failure stops the retrieve."""
        accepted: dict[str, frozenset[str]] | None = None
        for match in matches:
            if event.is_cancelled:
                self._count(operation.value, status.CANCEL)
                yield status.CANCEL, None
                return
            if accepted is None:
                accepted = _accepted_syntaxes(receiver())
            try:
                syntaxes = accepted.get(match.sop_class_uid, frozenset())
                dataset = self._run(self.retrieve.dataset(principal, match, syntaxes, operation.value), event)
            except LightboxError as exc:  # a stored file unreadable or not convertible
                failure = status.failure_for(exc, operation)
                log.warning("%s stopped with 0x%04X: %s", operation.value, failure.status, failure.comment)
                self._count(operation.value, failure.status)
                yield failure.status, _comment(failure)
                return
            yield status.PENDING, dataset
        self._count(operation.value, status.SUCCESS)

    def on_get(self, event: Event) -> Iterator[Any]:
        try:
            principal, matches = self._matches(event, status.Operation.GET)
        except LightboxError as exc:
            failure = status.failure_for(exc, status.Operation.GET)
            self._count("C-GET", failure.status)
            yield 1  # pynetdicom answers Success at once for 0 sub-operations: one, then the failure
            yield failure.status, _comment(failure)
            return
        yield len(matches)
        yield from self._send(event, status.Operation.GET, principal, matches, lambda: event.assoc)

    def on_move(self, event: Event) -> Iterator[Any]:
        """C-MOVE: pynetdicom opens the association to the destination with the contexts proposed here."""
        named = event.move_destination or ""
        title = named.decode("ascii", "replace") if isinstance(named, bytes) else named
        destination = self.destinations.get(title.strip())
        if destination is None:
            self._count("C-MOVE", status.MOVE_DESTINATION_UNKNOWN)
            yield None, None  # pynetdicom answers 0xA801 Move Destination unknown
            return
        try:
            principal, matches = self._matches(event, status.Operation.MOVE)
        except LightboxError as exc:
            failure = status.failure_for(exc, status.Operation.MOVE)
            self._count("C-MOVE", failure.status)
            yield destination.host, destination.port, {"contexts": _uncompressed(["1.2.840.10008.5.1.4.1.1.7"])}
            yield 1
            yield failure.status, _comment(failure)
            return
        contexts = _move_contexts(matches)
        yield destination.host, destination.port, {"contexts": contexts}
        yield len(matches)

        def receiver() -> Association | None:
            for association in event.assoc.ae.active_associations:
                if association.is_requestor and association.acceptor.ae_title.strip() == destination.ae_title:
                    return association
            return None

        yield from self._send(event, status.Operation.MOVE, principal, matches, receiver)


async def _awaited(work: Awaitable[T], context: RequestContext | None) -> T:
    if context is not None:
        current_request.set(context)  # this task's own copy of the context
    return await work


def _request_context(event: Event) -> RequestContext:
    """One DIMSE request as the request context: its operation, and the peer's address as the client."""
    requestor = event.assoc.requestor
    operation = str(getattr(event.request, "__class__", type(None)).__name__).replace("_", "-")
    scope = {"client": (str(requestor.address), int(requestor.port or 0))}
    return RequestContext(request_id=uuid.uuid4().hex, method=operation, scope=scope)


def _comment(failure: status.Failure) -> Dataset:
    identifier = Dataset()
    identifier.ErrorComment = failure.comment
    return identifier


def _accepted_syntaxes(association: Association | None) -> dict[str, frozenset[str]]:
    """Per SOP class, the transfer syntaxes the receiver of the C-STORE sub-operations accepted."""
    found: dict[str, set[str]] = {}
    for context in association.accepted_contexts if association is not None else []:
        found.setdefault(str(context.abstract_syntax), set()).add(str(context.transfer_syntax[0]))
    return {sop_class: frozenset(syntaxes) for sop_class, syntaxes in found.items()}


UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]  # Explicit, Implicit VR Little Endian
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255


def _uncompressed(sop_classes: list[str]) -> list[PresentationContext]:
    return [build_context(sop_class, UNCOMPRESSED) for sop_class in sop_classes]


def _move_contexts(matches: list[FindMatch]) -> list[PresentationContext]:
    """Per SOP class: its stored transfer syntaxes, each on its own, and the uncompressed ones (to decode to)."""
    sop_classes = sorted({m.sop_class_uid for m in matches}) or ["1.2.840.10008.5.1.4.1.1.7"]
    contexts = _uncompressed(sop_classes)
    for sop_class, syntax in sorted({(m.sop_class_uid, m.transfer_syntax_uid) for m in matches}):
        if syntax not in UNCOMPRESSED:
            contexts.append(build_context(sop_class, syntax))
    return contexts[:MAX_CONTEXTS]
