"""The WebSocket endpoints: authenticate, then shuttle frames between the socket and the core.

They speak ASGI directly rather than through Starlette's ``WebSocket`` wrapper: every frame in and
out passes through here, and the wrapper's per-message state checks and middleware hops cost more
than the rest of the relay path together. Outgoing frames skip ASGI too when the server offers
:mod:`collabgate.http.wire` (ours does): a :class:`~collabgate.http.wire.Flusher` writes them at
the end of each event-loop turn, and the writer task only closes. :class:`SocketEndpoint` holds
the lifecycle shared by both codecs (accept, authenticate, one reader and one writer task,
slow-consumer drop, close); :class:`WebSocketEndpoint` is `/ws` (JSON text frames) and
``http.yjs.YjsEndpoint`` is `/yjs`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar
from urllib.parse import parse_qs

import structlog
from starlette.types import Receive, Scope, Send

from collabgate.auth.principal import Principal
from collabgate.auth.verifier import TokenVerifier
from collabgate.errors import GatewayError
from collabgate.http.wire import EXTENSION as WIRE_EXTENSION
from collabgate.http.wire import Flusher, WireSocket, write_out
from collabgate.protocol import outbound
from collabgate.session.connection import Connection
from collabgate.session.gateway import CLOSE_POLICY, Gateway

log = structlog.get_logger(__name__)

#: Errors the ASGI server raises when the client has already gone.
_GONE = (OSError, RuntimeError)


#: The subprotocol a browser offers beside its token, which the gateway then selects:
#: ``new WebSocket(url, ["collabgate", "bearer." + jwt])``.
SUBPROTOCOL = "collabgate"
#: How an offered subprotocol carries the token: ``bearer.<jwt>``.
BEARER_SUBPROTOCOL = "bearer."


def bearer_token(scope: Scope) -> str | None:
    """The token from ``Authorization: Bearer …``; for browsers, which cannot set headers on a
    WebSocket, from a ``bearer.<token>`` subprotocol or else the ``token`` query parameter.

    The subprotocol keeps the token out of the URL, and so out of load-balancer access logs
    (an ALB logs the whole request line, query string included) and browser history.
    """
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    for offered in scope.get("subprotocols", []):
        if offered.startswith(BEARER_SUBPROTOCOL) and len(offered) > len(BEARER_SUBPROTOCOL):
            return str(offered[len(BEARER_SUBPROTOCOL) :])
    query: dict[str, list[str]] = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens and tokens[0] else None


def selected_subprotocol(scope: Scope) -> str | None:
    """``collabgate`` when the client offered it: a browser that offered subprotocols fails the
    handshake unless the server selects one."""
    return SUBPROTOCOL if SUBPROTOCOL in scope.get("subprotocols", []) else None


def accept_message(scope: Scope) -> dict[str, Any]:
    """The handshake's answer, with :func:`selected_subprotocol`."""
    message: dict[str, Any] = {"type": "websocket.accept"}
    subprotocol = selected_subprotocol(scope)
    if subprotocol is not None:
        message["subprotocol"] = subprotocol
    return message


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


class SocketEndpoint:
    """One WebSocket connection's life, for a codec chosen by the subclass."""

    #: The ASGI message key frames travel under: "text" or "bytes".
    frame_key: ClassVar[str]
    protocol: ClassVar[str]

    def __init__(
        self, gateway: Gateway, verifier: TokenVerifier, flusher: Flusher | None = None
    ) -> None:
        self.gateway = gateway
        self.verifier = verifier
        self.flusher = flusher or Flusher()

    # --- what differs per codec ----------------------------------------------------------------
    async def _register(self, principal: Principal, scope: Scope) -> Connection:
        raise NotImplementedError

    def _rejection_frame(self, error: GatewayError) -> str | bytes:
        raise NotImplementedError

    def _handler(self) -> Callable[[Connection, Any], Awaitable[None]]:
        raise NotImplementedError

    def _log_fields(self, connection: Connection) -> dict[str, Any]:
        return {}

    # --- the shared lifecycle ------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send(accept_message(scope))
        connection = await self._authenticate(scope, send)
        if connection is None:
            return
        structlog.contextvars.bind_contextvars(
            connection_id=connection.id, user_id=connection.user_id
        )
        log.info(
            "connection_opened",
            role=connection.principal.role.value,
            protocol=self.protocol,
            **self._log_fields(connection),
        )
        wire: WireSocket | None = scope.get("extensions", {}).get(WIRE_EXTENSION)
        writer = asyncio.create_task(self._write(send, connection, wire))
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
        """Verify the token and register the connection; None (socket closed) when refused."""
        remote = client_address(scope)
        try:
            principal = await self.verifier.verify(bearer_token(scope))
            return await self._register(principal, scope)
        except GatewayError as exc:
            self.gateway.reject(exc, remote)
            log.info("connection_rejected", code=exc.code, reason=exc.message, remote=remote)
            with contextlib.suppress(*_GONE):
                await send({"type": "websocket.send", self.frame_key: self._rejection_frame(exc)})
                await _close(send, exc.close_code or CLOSE_POLICY, exc.type)
            return None

    async def _read(self, receive: Receive, connection: Connection) -> str:
        handle = self._handler()
        key, other = ("text", "bytes") if self.frame_key == "text" else ("bytes", "text")
        while connection.close_request is None:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return "disconnected"
            frame = message.get(key)
            if frame is None:
                frame = message.get(other) or (b"" if key == "text" else "")
            await handle(connection, frame)
        return connection.close_request.reason

    async def _write(self, send: Send, connection: Connection, wire: WireSocket | None) -> None:
        """Close the socket when asked to or when the reader falls behind; with ``wire``, the
        flusher writes the frames and this task only wakes for that, otherwise it sends them."""
        outbox = connection.outbox
        if wire is not None:
            self.flusher.attach(outbox, wire)
        message: dict[str, Any] = {"type": "websocket.send", self.frame_key: None}
        try:
            while True:
                await outbox.wait()
                if outbox.overflowed:
                    self._drop_slow_consumer(connection)
                    await _close(send, CLOSE_POLICY, "slow consumer")
                    return
                if wire is not None:
                    write_out(outbox, wire, {})
                else:
                    for frame in outbox.take_all():
                        message[self.frame_key] = frame
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


class WebSocketEndpoint(SocketEndpoint):
    """`/ws`: the JSON protocol of docs/protocol.md."""

    frame_key = "text"
    protocol = "ws"

    async def _register(self, principal: Principal, scope: Scope) -> Connection:
        return await self.gateway.open(principal)

    def _rejection_frame(self, error: GatewayError) -> str:
        return outbound.encode(outbound.error(error))

    def _handler(self) -> Callable[[Connection, Any], Awaitable[None]]:
        return self.gateway.receive


async def _close(send: Send, code: int, reason: str) -> None:
    with contextlib.suppress(*_GONE):
        await send({"type": "websocket.close", "code": code, "reason": reason})
