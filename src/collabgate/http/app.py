"""The ASGI application: `/ws`, `/yjs/…`, `/health`, `/ready`, `/metrics` (and `/demo` when
enabled) over one running :class:`Runtime`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from collabgate.http.demo import demo_enabled, demo_routes
from collabgate.http.websocket import WebSocketEndpoint
from collabgate.http.wire import Flusher
from collabgate.http.yjs import PREFIX as YJS_PREFIX
from collabgate.http.yjs import YjsEndpoint
from collabgate.settings import Settings
from collabgate.wiring import Runtime

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class CollabgateApp:
    """`/ws` goes straight to the WebSocket endpoint; everything else (HTTP, lifespan) to Starlette."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime = Runtime(settings)
        self._endpoint: WebSocketEndpoint | None = None
        self._yjs_endpoint: YjsEndpoint | None = None
        self.http = Starlette(
            routes=[
                Route("/health", self._health),
                Route("/ready", self._ready),
                Route("/metrics", self._metrics),
                *(demo_routes(settings) if demo_enabled(settings) else []),
            ],
            lifespan=self._lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            path: str = scope["path"]
            if path == "/ws" and self._endpoint is not None:
                await self._endpoint(scope, receive, send)
                return
            if path.startswith(YJS_PREFIX) and self._yjs_endpoint is not None:
                await self._yjs_endpoint(scope, receive, send)
                return
        await self.http(scope, receive, send)

    @asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        await self.runtime.start()
        flusher = Flusher()  # one end-of-turn write pass for both endpoints' sockets
        self._endpoint = WebSocketEndpoint(self.runtime.gateway, self.runtime.verifier, flusher)
        self._yjs_endpoint = YjsEndpoint(self.runtime.gateway, self.runtime.verifier, flusher)
        try:
            yield
        finally:
            await self.runtime.stop()

    async def _health(self, _: Request) -> Response:
        return JSONResponse({"status": "ok", "instance": self.settings.instance_name})

    async def _ready(self, _: Request) -> Response:
        report = await self.runtime.readiness()
        return JSONResponse(report, status_code=200 if report["status"] == "ready" else 503)

    async def _metrics(self, _: Request) -> Response:
        self.runtime.refresh_gauges()
        return Response(self.runtime.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)


def create_app(settings: Settings) -> CollabgateApp:
    """Build the app; adapters start in its lifespan and stop (flushed) when it ends."""
    return CollabgateApp(settings)
