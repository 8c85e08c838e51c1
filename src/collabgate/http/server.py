"""Run the app under uvicorn, with a drain step between SIGTERM and the socket shutdown."""

from __future__ import annotations

import math
import socket

import uvicorn

from collabgate.http.app import CollabgateApp
from collabgate.http.wire import WireProtocol
from collabgate.settings import Settings
from collabgate.wiring import Runtime

#: WebSocket frames above this are refused by the server itself; frames between
#: ``max_frame_bytes`` and this get a WS_3004 error that names the limit.
HARD_FRAME_LIMIT_FACTOR = 4


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


def serve(app: CollabgateApp, settings: Settings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws=WireProtocol,  # websockets-sansio, writing broadcasts without ASGI (http/wire.py)
        ws_max_size=settings.max_frame_bytes * HARD_FRAME_LIMIT_FACTOR,
        ws_ping_interval=None,  # the protocol has its own HEARTBEAT
        ws_per_message_deflate=settings.websocket_compression,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds),
    )
    DrainingServer(config, app.runtime).run()
