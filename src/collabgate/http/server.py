"""Run the app under uvicorn, with a drain step between SIGTERM and the socket shutdown."""

from __future__ import annotations

import math
import socket

import uvicorn
from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collabgate.http.app import CollabgateApp
from collabgate.http.picows_wire import PicowsSocket, adopt, websocket_scope
from collabgate.http.websocket import selected_subprotocol
from collabgate.http.wire import WireProtocol
from collabgate.http.yjs import PREFIX as YJS_PREFIX
from collabgate.settings import Settings
from collabgate.wiring import Runtime

#: WebSocket frames above this are refused by the server itself; frames between
#: ``max_frame_bytes`` and this get a WS_3004 error that names the limit.
HARD_FRAME_LIMIT_FACTOR = 4

#: How long a socket that sent a close frame waits for the client's before it drops the
#: connection (uvicorn's own WebSocket protocol, which `/ws` runs on, waits as long).
CLOSE_TIMEOUT_SECONDS = 10.0


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, which lets go of a connection it upgraded to WebSocket.

    uvicorn breaks the cycle between the protocol and its parser (which calls back into it) in
    ``connection_lost``, and an upgraded connection never reaches that: the transport belongs
    to the WebSocket protocol by then. The cycle held the transport, and through it the whole
    WebSocket connection, for the cyclic garbage collector long after the socket closed.
    """

    def handle_websocket_upgrade(self) -> None:
        scope = websocket_scope(dict(self.scope), self.url)
        if scope["path"].startswith(YJS_PREFIX):
            self._upgrade_to_picows(scope)
        else:
            super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]  # as connection_lost does

    def _upgrade_to_picows(self, scope: Scope) -> None:
        """`/yjs/…`: picows answers the handshake and carries the frames (http/picows_wire.py)."""
        self.connections.discard(self)
        socket = PicowsSocket(
            self.app,
            scope,
            self.server_state,
            max_message_bytes=self.config.ws_max_size,
            close_timeout_seconds=CLOSE_TIMEOUT_SECONDS,
        )
        adopt(
            self.transport,
            self._request_bytes(),
            socket,
            selected_subprotocol(scope),
            max_frame_bytes=self.config.ws_max_size,
        )

    def _request_bytes(self) -> bytes:
        """The upgrade request as the client sent it, for picows to answer (as uvicorn
        rebuilds it for its own WebSocket protocols)."""
        lines = [self.scope["method"].encode(), b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.scope["headers"]:
            lines += [name, b": ", value, b"\r\n"]
        lines.append(b"\r\n")
        return b"".join(lines)


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
