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

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Scope

from collabgate.auth.principal import Principal
from collabgate.errors import GatewayError
from collabgate.http.websocket import SocketEndpoint
from collabgate.protocol import yjs
from collabgate.session.connection import Connection

#: The path prefix; the rest of the path is the resource id (the provider's room name).
PREFIX = "/yjs/"


def resource_id_of(scope: Scope) -> str:
    path: str = scope["path"]
    return path[len(PREFIX) :]


def requested_mode(scope: Scope) -> str | None:
    query: dict[str, list[str]] = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    modes = query.get("mode")
    return modes[0] if modes else None


class YjsEndpoint(SocketEndpoint):
    """`/yjs/{resourceId}`: binary y-protocols messages, handled by :meth:`Gateway.receive_yjs`."""

    frame_key = "bytes"
    protocol = "yjs"

    async def _register(self, principal: Principal, scope: Scope) -> Connection:
        return await self.gateway.open_yjs(principal, resource_id_of(scope), requested_mode(scope))

    def _rejection_frame(self, error: GatewayError) -> bytes:
        return yjs.permission_denied(f"{error.code} {error.type}: {error.message}")

    def _handler(self) -> Callable[[Connection, Any], Awaitable[None]]:
        return self.gateway.receive_yjs

    def _log_fields(self, connection: Connection) -> dict[str, Any]:
        return {"resource_id": connection.resource_id}
