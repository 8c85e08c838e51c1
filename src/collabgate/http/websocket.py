"""The `/ws` endpoint: authenticate, then shuttle frames between the socket and the core."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from collabgate.auth.verifier import TokenVerifier
from collabgate.errors import GatewayError
from collabgate.protocol import outbound
from collabgate.session.connection import Connection
from collabgate.session.gateway import CLOSE_POLICY, Gateway

log = structlog.get_logger(__name__)


def bearer_token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return websocket.query_params.get("token") or None


class WebSocketEndpoint:
    """ASGI-level handler for one `/ws` connection, driven by the :class:`Gateway`."""

    def __init__(self, gateway: Gateway, verifier: TokenVerifier) -> None:
        self.gateway = gateway
        self.verifier = verifier

    async def __call__(self, websocket: WebSocket) -> None:
        await websocket.accept()
        connection = await self._authenticate(websocket)
        if connection is None:
            return
        structlog.contextvars.bind_contextvars(
            connection_id=connection.id, user_id=connection.user_id
        )
        log.info("connection_opened", role=connection.principal.role.value)
        writer = asyncio.create_task(self._write(websocket, connection))
        reason = "disconnected"
        try:
            reason = await self._read(websocket, connection)
        finally:
            await self.gateway.close(connection, reason)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(writer, timeout=5)
            writer.cancel()
            log.info("connection_closed", reason=reason)
            structlog.contextvars.unbind_contextvars("connection_id", "user_id")

    async def _authenticate(self, websocket: WebSocket) -> Connection | None:
        remote = websocket.client.host if websocket.client else None
        try:
            principal = await self.verifier.verify(bearer_token(websocket))
            return self.gateway.open(principal)
        except GatewayError as exc:
            self.gateway.reject(exc, remote)
            log.info("connection_rejected", code=exc.code, reason=exc.message, remote=remote)
            await websocket.send_text(outbound.encode(outbound.error(exc)))
            await websocket.close(exc.close_code or CLOSE_POLICY, exc.type)
            return None

    async def _read(self, websocket: WebSocket, connection: Connection) -> str:
        receive = websocket.receive
        gateway = self.gateway
        while connection.close_request is None:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return "disconnected"
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            await gateway.receive(connection, frame)
        return connection.close_request.reason

    async def _write(self, websocket: WebSocket, connection: Connection) -> None:
        outbox = connection.outbox
        send = websocket.send_text
        try:
            while True:
                await outbox.wait()
                if outbox.overflowed:
                    self.gateway.metrics.connections_closed.labels("slow_consumer").inc()
                    log.warning("slow_consumer_disconnected")
                    connection.request_close(CLOSE_POLICY, "slow consumer")
                    await _close(websocket, CLOSE_POLICY, "slow consumer")
                    return
                for frame in outbox.take_all():
                    await send(frame)
                if outbox.closed:
                    request = connection.close_request
                    if request is not None:
                        await _close(websocket, request.code, request.reason)
                    return
        except (WebSocketDisconnect, RuntimeError, OSError):
            connection.request_close(1006, "disconnected")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(code, reason)
