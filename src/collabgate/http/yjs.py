"""The `/yjs/{resourceId}` endpoint: stock y-websocket providers, unchanged, on the same core.

``new WebsocketProvider("wss://host/yjs", resourceId, doc, {params: {token}})`` connects here.
The structure is the `/ws` endpoint's (raw ASGI, one reader and one writer task per socket);
only the codec differs: frames are binary y-protocols messages, handled by
:meth:`Gateway.receive_yjs`. The token comes in the ``token`` query parameter (browsers cannot
set headers on a WebSocket; an ``Authorization: Bearer`` header is accepted too), and an optional
``mode=viewer`` joins read-only. A refused handshake gets one permission-denied auth message,
which y-websocket logs with its reason, then the close code /ws would use.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import parse_qs

import structlog
from starlette.types import Receive, Scope, Send

from collabgate.auth.verifier import TokenVerifier
from collabgate.errors import GatewayError
from collabgate.http.websocket import bearer_token, client_address
from collabgate.protocol import yjs
from collabgate.session.connection import Connection
from collabgate.session.gateway import CLOSE_POLICY, Gateway

log = structlog.get_logger(__name__)

#: The path prefix; the rest of the path is the resource id (the provider's room name).
PREFIX = "/yjs/"

#: Errors the ASGI server raises when the client has already gone.
_GONE = (OSError, RuntimeError)


def resource_id_of(scope: Scope) -> str:
    path: str = scope["path"]
    return path[len(PREFIX) :]


def requested_mode(scope: Scope) -> str | None:
    query: dict[str, list[str]] = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    modes = query.get("mode")
    return modes[0] if modes else None


class YjsEndpoint:
    """ASGI handler for one `/yjs/{resourceId}` connection, driven by the :class:`Gateway`."""

    def __init__(self, gateway: Gateway, verifier: TokenVerifier) -> None:
        self.gateway = gateway
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        connection = await self._open(scope, send)
        if connection is None:
            return
        structlog.contextvars.bind_contextvars(
            connection_id=connection.id, user_id=connection.user_id
        )
        log.info(
            "connection_opened",
            role=connection.principal.role.value,
            protocol="yjs",
            resource_id=connection.resource_id,
        )
        writer = asyncio.create_task(self._write(send, connection))
        reason = "disconnected"
        try:
            reason = await self._read(receive, connection)
        finally:
            await self.gateway.close(connection, reason)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer, timeout=5)
            writer.cancel()
            log.info("connection_closed", reason=reason)
            structlog.contextvars.unbind_contextvars("connection_id", "user_id")

    async def _open(self, scope: Scope, send: Send) -> Connection | None:
        """Authenticate and join the resource of the path; None (socket closed) if refused."""
        remote = client_address(scope)
        try:
            principal = await self.verifier.verify(bearer_token(scope))
            return await self.gateway.open_yjs(
                principal, resource_id_of(scope), requested_mode(scope)
            )
        except GatewayError as exc:
            self.gateway.reject(exc, remote)
            log.info("connection_rejected", code=exc.code, reason=exc.message, remote=remote)
            reason = f"{exc.code} {exc.type}: {exc.message}"
            with contextlib.suppress(*_GONE):
                await send({"type": "websocket.send", "bytes": yjs.permission_denied(reason)})
                await _close(send, exc.close_code or CLOSE_POLICY, exc.type)
            return None

    async def _read(self, receive: Receive, connection: Connection) -> str:
        handle = self.gateway.receive_yjs
        while connection.close_request is None:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return "disconnected"
            frame = message.get("bytes")
            await handle(connection, frame if frame is not None else message.get("text") or "")
        return connection.close_request.reason

    async def _write(self, send: Send, connection: Connection) -> None:
        outbox = connection.outbox
        message: dict[str, Any] = {"type": "websocket.send", "bytes": b""}
        try:
            while True:
                await outbox.wait()
                if outbox.overflowed:
                    self._drop_slow_consumer(connection)
                    await _close(send, CLOSE_POLICY, "slow consumer")
                    return
                for frame in outbox.take_all():
                    message["bytes"] = frame
                    await send(message)
                if outbox.closed:
                    request = connection.close_request
                    if request is not None:
                        await _close(send, request.code, request.reason)
                    return
        except _GONE:
            connection.request_close(1006, "disconnected")

    def _drop_slow_consumer(self, connection: Connection) -> None:
        self.gateway.metrics.connections_closed.labels("slow_consumer").inc()
        log.warning("slow_consumer_disconnected")
        connection.request_close(CLOSE_POLICY, "slow consumer")


async def _close(send: Send, code: int, reason: str) -> None:
    with contextlib.suppress(*_GONE):
        await send({"type": "websocket.close", "code": code, "reason": reason})
