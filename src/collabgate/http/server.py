"""Run the app under uvicorn, with a drain step between SIGTERM and the socket shutdown."""

from __future__ import annotations

import math
import socket

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collabgate.http.app import CollabgateApp
from collabgate.http.wire import WireProtocol
from collabgate.settings import Settings
from collabgate.wiring import Runtime

#: WebSocket frames above this are refused by the server itself; frames between
#: ``max_frame_bytes`` and this get a WS_3004 error that names the limit.
HARD_FRAME_LIMIT_FACTOR = 4


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, which lets go of a connection it upgraded to WebSocket.

    uvicorn breaks the cycle between the protocol and its parser (which calls back into it) in
    ``connection_lost``, and an upgraded connection never reaches that: the transport belongs
    to the WebSocket protocol by then. The cycle held the transport, and through it the whole
    WebSocket connection, for the cyclic garbage collector long after the socket closed.
    """

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]  # as connection_lost does


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT: stop accepting, send SERVER_SHUTDOWN, let clients go, then exit."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self._runtime = runtime

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        await self._runtime.drain()
        await self._runtime.gateway.wait_all_closed(self._runtime.settings.shutdown_timeout_seconds)
        await super().shutdown(sockets)


def uvicorn_config(app: CollabgateApp, settings: Settings) -> uvicorn.Config:
    """The server configuration :func:`serve` runs (and the tests that run it in process)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=HttpProtocol,
        ws=WireProtocol,  # websockets-sansio, writing broadcasts without ASGI (http/wire.py)
        ws_max_size=settings.max_frame_bytes * HARD_FRAME_LIMIT_FACTOR,
        ws_ping_interval=None,  # the protocol has its own HEARTBEAT
        ws_per_message_deflate=settings.websocket_compression,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds),
    )


def serve(app: CollabgateApp, settings: Settings) -> None:
    DrainingServer(uvicorn_config(app, settings), app.runtime).run()
