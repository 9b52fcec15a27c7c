"""``grpc.health.v1.Health`` answering from the same checks as ``/readyz`` (``app.state.readiness_checks``).

SERVING when every check passes, NOT_SERVING otherwise, for the whole server (``""``) and for
``lightbox.v1.Lightbox``; other names are NOT_FOUND, as the health protocol says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.datastructures import State

from app.readiness import run_checks

SERVICE = "lightbox.v1.Lightbox"
WATCH_INTERVAL_SECONDS = 5.0


class ReadinessHealth(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    def __init__(self, state: State) -> None:
        self.state = state

    async def status(self) -> int:
        checks = await run_checks(self.state.readiness_checks, self.state.settings.readiness_timeout)
        ready = all(result == "ok" for result in checks.values())
        serving: int = health_pb2.HealthCheckResponse.SERVING
        return serving if ready else health_pb2.HealthCheckResponse.NOT_SERVING

    async def Check(  # noqa: N802 (the generated base class names the RPCs)
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if request.service not in ("", SERVICE):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service[:100]!r}")
        return health_pb2.HealthCheckResponse(status=await self.status())

    async def Watch(  # noqa: N802
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now, then each change (checked every few seconds) until the client leaves."""
        if request.service not in ("", SERVICE):
            yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
            return
        last = None
        while True:
            current = await self.status()
            if current != last:
                yield health_pb2.HealthCheckResponse(status=current)
                last = current
            await anyio.sleep(WATCH_INTERVAL_SECONDS)
