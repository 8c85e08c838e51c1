"""`/yjs` sockets on picows: frames parsed and written in compiled code, the app unchanged.

uvicorn's WebSocket protocol parses every frame in Python (websockets' generator parser, then
uvicorn's event handling): on the /yjs relay at 2,500 clients about a tenth of the event loop's
time, and the loop's share decides where p99 turns up (docs/performance.md, "/yjs on picows").
picows parses and writes frames in Cython, on the same uvloop transport.

uvicorn still parses the HTTP request and routes it; an upgrade to a `/yjs/` path is handed to
picows here (:func:`adopt`, called by ``http.server.HttpProtocol``), which answers the handshake
and parses the frames. :class:`PicowsSocket` is one such connection, and offers the app the
same two faces as :class:`~collabgate.http.wire.WireProtocol`: ASGI ``receive``/``send`` for
the lifecycle in :mod:`collabgate.http.websocket`, and the ``collabgate.wire`` extension
(:meth:`~PicowsSocket.direct_writer`, :meth:`~PicowsSocket.write_frames`) for the flusher. The
app, its routing, the proxy-headers middleware and the endpoints see an ordinary WebSocket scope.

What differs from uvicorn's WebSocket protocol, and why it does not matter here: the subprotocol
is chosen when the handshake is answered, before the app runs (the endpoints' choice,
:func:`~collabgate.http.websocket.selected_subprotocol`, depends on the request alone); and
there is no permessage-deflate (y-websocket's updates are small binary messages, and `/ws`,
where ``COLLABGATE_WEBSOCKET_COMPRESSION`` applies, stays on uvicorn's protocol).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import structlog
from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

# What ws_create_server instantiates for each connection; not in picows' type stubs.
from picows.picows import WSProtocol  # type: ignore[attr-defined]
from starlette.types import Message, Scope
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.server import ServerState

from collabgate.http.wire import EXTENSION, SerialisedFrames
from collabgate.ops.event_loop import MessageQueue, running_loop
from collabgate.session.outbox import Frame

#: The ASGI application the socket runs (uvicorn's loaded app, middleware included).
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

log = structlog.get_logger(__name__)


class PicowsLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The log picows writes to: its two lines per connection (accepted, disconnected) dropped,
    the gateway logs its own; what a client's bad frame makes it report at warning, since the
    close code already tells the client and nothing is wrong with the server. Anything logged
    with a traceback (a failure inside picows) stays an error."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level < logging.WARNING:
            return
        if level == logging.ERROR and not kwargs.get("exc_info"):
            level = logging.WARNING
        super().log(level, msg, *args, **kwargs)


_picows_log = PicowsLog(logging.getLogger("collabgate.picows"))

#: Close code for a connection whose app failed (RFC 6455: internal error).
_INTERNAL_ERROR = 1011
#: Close code when the connection ends without a close frame (RFC 6455, never sent).
_ABNORMAL = 1006


class PicowsSocket(WSListener):
    """One WebSocket connection on picows, offered to the app as ASGI plus the wire extension.

    Frames go to the app through a queue read by its one reader task; reading from the socket
    pauses once a message waits unread (as :class:`~collabgate.http.wire.WireProtocol` does),
    so a client cannot queue more than what one read brings before the app catches up. A
    fragmented message is reassembled up to ``max_message_bytes``; past it the socket is
    closed with 1009, as it is for a single frame that large.
    """

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        server_state: ServerState,
        *,
        max_message_bytes: int,
        close_timeout_seconds: float,
    ) -> None:
        self._app = app
        self.scope = scope
        self._server_state = server_state
        self._max_message_bytes = max_message_bytes
        self._close_timeout = close_timeout_seconds
        self._queue: MessageQueue[Message] = MessageQueue()
        self._transport: WSTransport | None = None
        self._reading_paused = False
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._fragments_type: WSMsgType | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.close_sent = False
        self.disconnected = False
        scope.setdefault("extensions", {})[EXTENSION] = self

    @property
    def transport(self) -> WSTransport:
        """picows's transport of this connection (there is one from the handshake on)."""
        assert self._transport is not None, "the handshake has not completed"
        return self._transport

    # --- picows callbacks --------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        self._server_state.connections.add(self)  # type: ignore[arg-type]  # shutdown() below
        self._queue.put_nowait({"type": "websocket.connect"})
        task = running_loop().create_task(self._run_app())
        self._server_state.tasks.add(task)
        task.add_done_callback(self._server_state.tasks.discard)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if (
            frame.fin
            and self._fragments_type is None
            and (msg_type is WSMsgType.BINARY or msg_type is WSMsgType.TEXT)
        ):
            self._deliver(msg_type, frame.get_payload_as_bytes())
        elif msg_type is WSMsgType.CLOSE:
            self._close_received(frame.get_close_code())
        elif msg_type is WSMsgType.BINARY or msg_type is WSMsgType.TEXT:
            self._fragment_started(msg_type, frame)
        elif msg_type is WSMsgType.CONTINUATION:
            self._fragment_continued(frame)
        # PING is answered by picows itself; PONG needs nothing.

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._server_state.connections.discard(self)
        self._queue.put_nowait({"type": "websocket.disconnect", "code": _ABNORMAL})
        self._fragments = []
        # The scope refers to this socket and this socket to the scope: break the cycle.
        self.scope.get("extensions", {}).pop(EXTENSION, None)

    # --- uvicorn's server ----------------------------------------------------------------------
    def shutdown(self) -> None:
        """What uvicorn asks of every open connection when it stops: close with 1012."""
        self._send_close(1012, "")
        if self._transport is not None:
            self._transport.disconnect()

    # --- ASGI ----------------------------------------------------------------------------------
    async def receive(self) -> Message:
        message = await self._queue.get()
        if self._reading_paused and self._queue.empty() and self._transport is not None:
            self._reading_paused = False
            self._transport.underlying_transport.resume_reading()
        return message

    async def send(self, message: Message) -> None:
        if self.disconnected:
            raise ClientDisconnected()
        kind = message["type"]
        if kind == "websocket.send":
            if self.close_sent:
                raise ClientDisconnected()
            payload = message.get("bytes")
            self._send_frame(payload if payload is not None else str(message.get("text", "")))
        elif kind == "websocket.close":
            self._send_close(int(message.get("code", 1000)), str(message.get("reason") or ""))
        # websocket.accept: picows answered the handshake before the app ran.

    # --- the wire extension (http/wire.py's Flusher) ------------------------------------------
    def direct_writer(self, done: SerialisedFrames) -> Callable[[Frame], int]:
        """Write one frame at once; the bytes the socket has not taken, -1 when closing.

        :meth:`_send_frame` inlined, with the transport's methods looked up once: this runs
        once per recipient of every broadcast.
        """
        assert self._transport is not None  # frames exist only once the app runs
        send = self._transport.send
        unsent = self._transport.underlying_transport.get_write_buffer_size
        binary, text = WSMsgType.BINARY, WSMsgType.TEXT

        def write_one(frame: Frame) -> int:
            if self.close_sent or self.disconnected:
                return -1
            if type(frame) is bytes:
                send(binary, frame)
            else:
                send(text, frame.encode())  # type: ignore[union-attr]
            return unsent()

        return write_one

    def write_frames(self, frames: list[Frame], done: SerialisedFrames) -> int:
        if self.close_sent or self.disconnected:
            return -1
        for frame in frames:
            self._send_frame(frame)
        return int(self.transport.underlying_transport.get_write_buffer_size())

    # --- internals -----------------------------------------------------------------------------
    async def _run_app(self) -> None:
        try:
            await self._app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception:
            log.exception("websocket_app_failed")
            self._send_close(_INTERNAL_ERROR, "internal error")
        self._send_close(1000, "")  # unless a close is under way already

    def _deliver(self, msg_type: WSMsgType, payload: bytes) -> None:
        if msg_type is WSMsgType.BINARY:
            message: Message = {"type": "websocket.receive", "bytes": payload}
        else:
            try:
                message = {"type": "websocket.receive", "text": payload.decode()}
            except UnicodeDecodeError:
                self._protocol_error(WSCloseCode.INVALID_TEXT, "text frame is not UTF-8")
                return
        behind = not self._queue.empty()
        self._queue.put_nowait(message)
        if behind and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.underlying_transport.pause_reading()

    def _fragment_started(self, msg_type: WSMsgType, frame: WSFrame) -> None:
        if self._fragments_type is not None:
            self._protocol_error(WSCloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
            return
        self._fragments_type = msg_type
        self._fragments = []
        self._fragments_size = 0
        self._fragment_continued(frame)

    def _fragment_continued(self, frame: WSFrame) -> None:
        msg_type = self._fragments_type
        if msg_type is None:
            self._protocol_error(WSCloseCode.PROTOCOL_ERROR, "continuation without a message")
            return
        self._fragments_size += frame.payload_size
        if self._fragments_size > self._max_message_bytes:
            self._protocol_error(
                WSCloseCode.MESSAGE_TOO_BIG,
                f"message over {self._max_message_bytes} bytes",
            )
            return
        self._fragments.append(frame.get_payload_as_bytes())
        if frame.fin:
            payload = b"".join(self._fragments)
            self._fragments, self._fragments_type = [], None
            self._deliver(msg_type, payload)

    def _protocol_error(self, code: WSCloseCode, reason: str) -> None:
        self._fragments, self._fragments_type = [], None
        self._send_close(code.value, reason)

    def _close_received(self, code: WSCloseCode) -> None:
        """The client closes: answer with its code (RFC 6455 5.5.1) and end the connection."""
        if not self.close_sent:
            self.close_sent = True
            self.transport.send_close(code)
        self.transport.disconnect()

    def _send_close(self, code: int, reason: str) -> None:
        """Send a close frame, unless one was sent or the connection is gone; the client
        answers and picows ends the connection, or the close timeout does."""
        if self.close_sent or self.disconnected or self._transport is None:
            return
        self.close_sent = True
        self._transport.send_close(code, reason.encode())  # type: ignore[arg-type]
        self._close_timer = running_loop().call_later(
            self._close_timeout, self._transport.disconnect
        )

    def _send_frame(self, frame: Frame) -> None:
        """A binary frame for ``bytes``, a text frame for ``str``."""
        if isinstance(frame, bytes):
            self.transport.send(WSMsgType.BINARY, frame)
        else:
            self.transport.send(WSMsgType.TEXT, frame.encode())


def websocket_scope(http_scope: Scope, url: bytes) -> Scope:
    """The ASGI WebSocket scope of an upgrade request to ``url``, from uvicorn's HTTP scope
    (which, for an upgrade, uvicorn leaves without a path: its WebSocket protocols build their
    own; this builds the same)."""
    raw_path, _, query_string = url.decode("latin-1").partition("?")
    root_path: str = http_scope.get("root_path", "")
    subprotocols = [
        offered.strip()
        for name, value in http_scope.get("headers", [])
        if name == b"sec-websocket-protocol"
        for offered in value.decode("latin-1").split(",")
        if offered.strip()
    ]
    return {
        **http_scope,
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "scheme": "wss" if http_scope.get("scheme") == "https" else "ws",
        "path": root_path + unquote(raw_path),
        "raw_path": (root_path + raw_path).encode("latin-1"),
        "query_string": query_string.encode("latin-1"),
        "subprotocols": subprotocols,
        "extensions": {},
    }


def adopt(
    transport: asyncio.Transport,
    request: bytes,
    socket: PicowsSocket,
    subprotocol: str | None,
    *,
    max_frame_bytes: int,
) -> None:
    """Hand ``transport``, whose HTTP ``request`` (an upgrade) uvicorn has parsed, to picows.

    picows validates the upgrade and answers it (selecting ``subprotocol`` when given), then
    calls ``socket`` for every frame.
    """

    def listener_for(_: WSUpgradeRequest) -> WSListener | WSUpgradeResponseWithListener:
        if subprotocol is None:
            return socket
        response = WSUpgradeResponse.create_101_response(
            extra_headers={"Sec-WebSocket-Protocol": subprotocol}
        )
        return WSUpgradeResponseWithListener(response, socket)

    protocol = WSProtocol(
        None,  # host and port: a client's
        None,  # path: a client's
        False,  # is_client_side
        listener_for,
        _picows_log,
        True,  # disconnect_on_exception
        None,  # handshake timeout: the request is already here
        False,  # enable_auto_ping: the protocols have their own heartbeat
        20.0,  # auto_ping_idle_timeout (unused)
        20.0,  # auto_ping_reply_timeout (unused)
        WSAutoPingStrategy.PING_WHEN_IDLE,
        True,  # enable_auto_pong
        max_frame_bytes,
        None,  # extra_headers: a client's
        16384,  # read_buffer_init_size
    )
    protocol.connection_made(transport)
    _feed(protocol, request)
    transport.set_protocol(protocol)


def _feed(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]


__all__ = ["PicowsSocket", "adopt", "websocket_scope"]
