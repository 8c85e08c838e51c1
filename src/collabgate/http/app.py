"""The ASGI application: `/ws`, `/health`, `/ready`, `/metrics` over one running :class:`Runtime`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from collabgate.http.websocket import WebSocketEndpoint
from collabgate.settings import Settings
from collabgate.wiring import Runtime

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_app(settings: Settings) -> Starlette:
    """Build the app; adapters start in its lifespan and stop (flushed) when it ends."""
    runtime = Runtime(settings)
    endpoint: list[WebSocketEndpoint] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        endpoint.append(WebSocketEndpoint(runtime.gateway, runtime.verifier))
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    async def websocket(ws: WebSocket) -> None:
        await endpoint[0](ws)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "instance": settings.instance_name})

    async def ready(_: Request) -> Response:
        report = await runtime.readiness()
        return JSONResponse(report, status_code=200 if report["status"] == "ready" else 503)

    async def metrics(_: Request) -> Response:
        runtime.refresh_gauges()
        return Response(runtime.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    return Starlette(
        routes=[
            WebSocketRoute("/ws", websocket),
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )
