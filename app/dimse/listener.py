"""The DICOM network listener: a pynetdicom server thread beside the HTTP app, in the same process.

Started by the app lifespan when ``LIGHTBOX_DIMSE_PORT`` is set. With several ``lightbox``
workers, exactly one holds the port: each worker tries to bind it without ``SO_REUSEPORT`` (the
kernel would otherwise spread associations over workers, and an association is one long stateful
conversation, PS3.8 9); the first wins, the others try again every ``RETRY_SECONDS``, so when
the holder stops or dies another worker takes the port over. Every worker's ``/readyz`` checks
that the port answers.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import ssl

import anyio
from anyio import to_thread
from pydicom import uid
from pynetdicom import AE, AllStoragePresentationContexts
from pynetdicom.transport import ThreadedAssociationServer

from app.config import Settings
from app.dimse.peers import parse_destinations, parse_peers
from app.dimse.scp import (
    PATIENT_ROOT_FIND,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    VERIFICATION,
    CallerRules,
    Handlers,
    PrincipalResolver,
)
from app.metrics import Metrics
from app.readiness import CheckFailed
from app.services.instances import InstanceService
from app.services.renders import RenderService
from app.services.retrieve import RetrieveService

log = logging.getLogger("lightbox.dimse")
RETRY_SECONDS = 5.0

#: What a sender may use (PS3.5 A): the uncompressed syntaxes, deflate, and every compressed one the
#: renderer decodes (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000 and HTJ2K, RLE).
STORAGE_SYNTAXES = [
    *uid.UncompressedTransferSyntaxes,
    uid.DeflatedExplicitVRLittleEndian,
    *uid.JPEGTransferSyntaxes,
    *uid.JPEGLSTransferSyntaxes,
    *uid.JPEG2000TransferSyntaxes,
    *uid.RLETransferSyntaxes,
]


def application_entity(settings: Settings) -> AE:
    """The AE: its title, limits, timeouts and the presentation contexts it accepts."""
    ae = AE(ae_title=settings.dimse_ae_title)
    ae.maximum_associations = settings.dimse_max_associations
    ae.maximum_pdu_size = settings.dimse_max_pdu_bytes
    ae.acse_timeout = settings.dimse_acse_timeout
    ae.dimse_timeout = settings.dimse_dimse_timeout
    ae.network_timeout = settings.dimse_idle_timeout
    ae.require_called_aet = False  # lenient: modalities are often configured with another title
    for sop_class in (VERIFICATION, STUDY_ROOT_FIND, PATIENT_ROOT_FIND, STUDY_ROOT_GET, STUDY_ROOT_MOVE):
        ae.add_supported_context(sop_class)
    for context in AllStoragePresentationContexts:  # C-STORE SCP, and SCU within C-GET (role selection)
        assert context.abstract_syntax is not None
        ae.add_supported_context(context.abstract_syntax, STORAGE_SYNTAXES, scu_role=True, scp_role=True)
    return ae


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """DICOM TLS (PS3.15 B.1, the BCP 195 profile): TLS 1.2 or later from the certificate and key when given;
    with ``LIGHTBOX_DIMSE_TLS_CA`` peers must also present a certificate that CA signed."""
    if settings.dimse_tls_cert is None or settings.dimse_tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.dimse_tls_cert, settings.dimse_tls_key)
    if settings.dimse_tls_ca is not None:
        context.load_verify_locations(settings.dimse_tls_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class DimseListener:
    """Binds the port if free (else retries), serves associations in threads, stops with the app."""

    def __init__(
        self,
        settings: Settings,
        instances: InstanceService,
        renders: RenderService,
        resolve: PrincipalResolver,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.instances = instances
        self.renders = renders
        self.resolve = resolve
        self.metrics = metrics
        self.server: ThreadedAssociationServer | None = None
        self._retry: asyncio.Task[None] | None = None
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO lines are per message

    @property
    def address(self) -> tuple[str, int]:
        assert self.settings.dimse_port is not None
        return self.settings.dimse_host, self.settings.dimse_port

    async def start(self) -> None:
        """Bind now, or keep trying in the background while another worker holds the port."""
        if not await self._try_bind():
            log.info("DICOM port %d is held by another worker; retrying every %g s", self.address[1], RETRY_SECONDS)
            self._retry = asyncio.create_task(self._keep_trying())

    async def _try_bind(self) -> bool:
        handlers = Handlers(
            self.instances,
            RetrieveService(self.instances, self.renders),
            CallerRules(parse_peers(self.settings.dimse_peers), self.settings.dimse_accept_any),
            parse_destinations(self.settings.dimse_destinations),
            self.resolve,
            asyncio.get_running_loop(),
            self.metrics,
        )
        ae = application_entity(self.settings)
        try:
            self.server = await to_thread.run_sync(self._bind, ae, handlers)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            return False
        log.info("DICOM listener %s on %s:%d (worker pid %d)", self.settings.dimse_ae_title, *self.address, os.getpid())
        return True

    def _bind(self, ae: AE, handlers: Handlers) -> ThreadedAssociationServer:
        tls = tls_context(self.settings)
        server = ae.start_server(self.address, block=False, evt_handlers=handlers.bindings(), ssl_context=tls)
        assert server is not None
        return server

    async def _keep_trying(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                if await self._try_bind():
                    return
            except OSError as exc:
                log.warning("DICOM listener cannot bind: %s", exc.strerror)

    async def check(self) -> None:
        """Readiness: this worker's server thread is up, or another process answers on the port."""
        if self.server is not None:
            return
        try:
            with anyio.fail_after(1):
                stream = await anyio.connect_tcp(*self.address)
                await stream.aclose()
        except (OSError, TimeoutError):
            raise CheckFailed(f"the DICOM listener on port {self.address[1]} is not listening") from None

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        server, self.server = self.server, None
        if server is not None:
            await to_thread.run_sync(_shutdown, server)


def _shutdown(server: ThreadedAssociationServer) -> None:
    """Stop accepting and close the socket, then abort the associations still open."""
    server.shutdown()
    for association in server.active_associations:
        association.abort()
