"""The `/ws` endpoint: authenticate, then shuttle frames between the socket and the core.

It speaks ASGI directly rather than through Starlette's ``WebSocket`` wrapper: every frame in and
out passes through here, and the wrapper's per-message state checks and middleware hops cost more
than the rest of the relay path together.
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
from collabgate.protocol import outbound
from collabgate.session.connection import Connection
from collabgate.session.gateway import CLOSE_POLICY, Gateway

log = structlog.get_logger(__name__)

#: Errors the ASGI server raises when the client has already gone.
_GONE = (OSError, RuntimeError)


def bearer_token(scope: Scope) -> str | None:
    """The token from ``Authorization: Bearer …`` or, for browsers, the ``token`` query parameter."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    query: dict[str, list[str]] = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens and tokens[0] else None


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


class WebSocketEndpoint:
    """ASGI handler for one `/ws` connection, driven by the :class:`Gateway`."""

    def __init__(self, gateway: Gateway, verifier: TokenVerifier) -> None:
        self.gateway = gateway
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        connection = await self._authenticate(scope, send)
        if connection is None:
            return
        structlog.contextvars.bind_contextvars(
            connection_id=connection.id, user_id=connection.user_id
        )
        log.info("connection_opened", role=connection.principal.role.value)
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

    async def _authenticate(self, scope: Scope, send: Send) -> Connection | None:
        remote = client_address(scope)
        try:
            principal = await self.verifier.verify(bearer_token(scope))
            return await self.gateway.open(principal)
        except GatewayError as exc:
            self.gateway.reject(exc, remote)
            log.info("connection_rejected", code=exc.code, reason=exc.message, remote=remote)
            with contextlib.suppress(*_GONE):
                await send({"type": "websocket.send", "text": outbound.encode(outbound.error(exc))})
                await _close(send, exc.close_code or CLOSE_POLICY, exc.type)
            return None

    async def _read(self, receive: Receive, connection: Connection) -> str:
        handle = self.gateway.receive
        while connection.close_request is None:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return "disconnected"
            frame = message.get("text")
            await handle(connection, frame if frame is not None else message.get("bytes") or b"")
        return connection.close_request.reason

    async def _write(self, send: Send, connection: Connection) -> None:
        outbox = connection.outbox
        message: dict[str, Any] = {"type": "websocket.send", "text": ""}
        try:
            while True:
                await outbox.wait()
                if outbox.overflowed:
                    self._drop_slow_consumer(connection)
                    await _close(send, CLOSE_POLICY, "slow consumer")
                    return
                for frame in outbox.take_all():
                    message["text"] = frame
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
