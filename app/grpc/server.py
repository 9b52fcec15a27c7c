"""The gRPC server: ``grpc.aio`` on the HTTP app's event loop, started and stopped by its lifespan.

Only when ``LIGHTBOX_GRPC_PORT`` is set. With several ``lightbox`` workers, every worker binds the
port with ``SO_REUSEPORT`` (gRPC's default on Linux, set here explicitly) and the kernel spreads the
connections over them, as it does for HTTP: no worker is special, and one that dies takes only its
own connections with it.
"""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from starlette.datastructures import State

from app.config import Settings
from app.grpc import lightbox_pb2, lightbox_pb2_grpc
from app.grpc.health import ReadinessHealth
from app.grpc.servicer import LightboxServicer

log = logging.getLogger("lightbox.grpc")

MAX_RECEIVE_BYTES = 2 * 1024 * 1024  # an upload chunk is at most 1 MiB; every other request is small
MAX_SEND_BYTES = 1024 * 1024  # streams are cut into 256 KiB messages
SERVICE_NAME = lightbox_pb2.DESCRIPTOR.services_by_name["Lightbox"].full_name


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS from ``LIGHTBOX_GRPC_TLS_CERT``/``_KEY`` (both or neither: :class:`Settings` checks), read once at start."""
    if settings.grpc_tls_cert is None or settings.grpc_tls_key is None:
        return None
    pair = (settings.grpc_tls_key.read_bytes(), settings.grpc_tls_cert.read_bytes())
    return grpc.ssl_server_credentials([pair])


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_grpc(state: State, settings: Settings) -> grpc.aio.Server:
    """Serve ``lightbox.v1.Lightbox``, ``grpc.health.v1.Health`` and reflection on the configured port."""
    assert settings.grpc_port is not None
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.so_reuseport", 1),
        ]
    )
    lightbox_pb2_grpc.add_LightboxServicer_to_server(LightboxServicer(state), server)  # type: ignore[no-untyped-call]
    health_pb2_grpc.add_HealthServicer_to_server(ReadinessHealth(state), server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection((SERVICE_NAME, health_name, reflection.SERVICE_NAME), server)
    address = _address(settings.grpc_host, settings.grpc_port)
    credentials = _credentials(settings)
    if credentials is None:
        server.add_insecure_port(address)
    else:
        server.add_secure_port(address, credentials)
    await server.start()
    log.info("gRPC API listening on %s%s", address, " (TLS)" if credentials else "")
    return server
