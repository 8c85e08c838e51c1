"""Frames straight to the socket: one serialisation per broadcast, one write per socket per turn.

Through ASGI, every frame to every recipient costs a coroutine, a writer-task wake-up, a frame
serialisation and a ``transport.write`` system call. A broadcast carries the same payload to each
peer, and a server's frames are not masked, so the bytes on the wire are the same for all of
them. Here they are serialised once per event-loop turn and each socket gets one write of
everything queued for it during that turn.

:class:`WireProtocol` (`/ws`) is uvicorn's websockets-sansio protocol lending itself to the app
as a :class:`WireSocket`, under the ``collabgate.wire`` ASGI extension (the handshake, reading,
ping/pong and closing stay uvicorn's and websockets', but for when reading pauses and the
reference cycles broken on close);
:class:`Flusher` writes, at the end of a turn, every outbox that filled during it, and lends
outboxes a direct write for frames that need not wait. `/yjs` sockets are picows's
(:mod:`collabgate.http.picows_wire`), which offer the same extension. Under another ASGI server
the extension is absent and the endpoints use plain ASGI sends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.http11 import Request

from collabgate.ops.event_loop import MessageQueue, running_loop
from collabgate.session.outbox import Frame, Outbox

#: The ASGI scope extension under which a socket offers itself as a :class:`WireSocket`.
EXTENSION = "collabgate.wire"

#: Serialised frames kept for direct writes: a broadcast's frame is reused by every recipient.
RECENT_FRAMES = 64

#: Frames serialised during one flush: ``id(frame)`` → (the frame, kept alive, and its bytes).
SerialisedFrames = dict[int, tuple[Frame, bytes]]


class WireSocket(Protocol):
    """What a socket offers under :data:`EXTENSION`: frames written without ASGI.

    :class:`WireProtocol` (uvicorn's protocol, `/ws`) and
    :class:`~collabgate.http.picows_wire.PicowsSocket` (`/yjs`) are the two.
    """

    def direct_writer(self, done: SerialisedFrames) -> Callable[[Frame], int]:
        """A function writing one frame at once: the bytes the socket has not taken yet
        afterwards, or -1 when it is closing."""
        ...

    def write_frames(self, frames: list[Frame], done: SerialisedFrames) -> int:
        """Write ``frames``; the same return as :meth:`direct_writer`'s function."""
        ...


def as_message(frame: Frame) -> tuple[Opcode, bytes]:
    """The WebSocket message a frame is: binary for ``bytes``, text for ``str``."""
    if isinstance(frame, bytes):
        return Opcode.BINARY, frame
    return Opcode.TEXT, frame.encode()


def serialise(frame: Frame, done: SerialisedFrames) -> bytes:
    """The unmasked, uncompressed wire form of ``frame``, computed once per flush."""
    known = done.get(id(frame))
    if known is not None:
        return known[1]
    data = WireFrame(*as_message(frame)).serialize(mask=False)
    done[id(frame)] = (frame, data)
    return data


class WireProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, plus :meth:`write_frames` for the endpoints."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The app waits on this queue for every message (uvicorn only puts, gets and asks
        # whether it is empty): a deque and one waiter instead of asyncio.Queue's bookkeeping.
        self.queue = MessageQueue()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        if scope is not None:  # None: the request was refused before a scope existed
            scope["extensions"][EXTENSION] = self

    def connection_lost(self, exc: Exception | None) -> None:
        """Break the reference cycles a closed connection would leave to the cyclic collector.

        The gateway's large young GC generation (ops/gc_policy.py) makes collections rare, so
        a cycle kept a closed connection's objects in memory for long. Two are broken here:
        the scope refers to this protocol, which refers to the scope; and websockets parses
        with a generator that refers back to its protocol, suspended until more data or an
        end of stream that uvicorn never passes on. (HttpProtocol in http/server.py breaks the
        third, uvicorn's HTTP protocol with its parser.)
        """
        super().connection_lost(exc)
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(EXTENSION, None)
        self.conn.parser.close()

    def send_receive_event_to_app(self) -> None:
        """Hand a message to the app; stop reading only once the app is a message behind.

        uvicorn pauses reading after every message and resumes when the app takes it: two
        ``epoll_ctl`` system calls per message while the app keeps up. Here reading pauses
        only when a message is already waiting, which bounds the backlog as tightly (a waiting
        message plus what the one read brought) at no cost to an app that keeps up.
        """
        behind = not self.queue.empty()
        paused = self.read_paused
        self.read_paused = True  # keeps uvicorn's method from pausing on its own
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if behind and not paused:
            self.read_paused = True
            self.transport.pause_reading()

    def direct_writer(self, done: SerialisedFrames) -> Callable[[Frame], int]:
        """:meth:`write_frames` for one frame, as the function :meth:`Outbox.push_now` calls.

        It runs once per recipient of every broadcast, so the usual case (an open socket
        without compression) writes with no further Python call: the transport's methods are
        looked up once, here. ``done`` is kept to the last few broadcasts' frames.
        """
        transport = self.transport
        is_closing, write = transport.is_closing, transport.write
        unsent = transport.get_write_buffer_size

        def write_one(frame: Frame) -> int:
            if self.close_sent or self.disconnected or is_closing():
                return -1
            if self.conn.extensions:
                return self.write_frames([frame], done)
            known = done.get(id(frame))
            if known is None:
                if len(done) > RECENT_FRAMES:
                    done.clear()
                write(serialise(frame, done))
            else:
                write(known[1])
            return unsent()

        return write_one

    def write_frames(self, frames: list[Frame], done: SerialisedFrames) -> int:
        """Write ``frames`` in one system call; the bytes the kernel has not taken yet, or -1
        when the socket is closing (what was queued for it no longer matters).

        Frames only exist once the handshake is complete (the endpoints accept first), so
        whether the socket is still open is the closing handshake's and the transport's say.
        """
        transport = self.transport
        if self.close_sent or self.disconnected or transport.is_closing():
            return -1
        if self.conn.extensions:  # permessage-deflate: each connection compresses on its own
            conn = self.conn
            for frame in frames:
                opcode, payload = as_message(frame)
                (conn.send_binary if opcode is Opcode.BINARY else conn.send_text)(payload)
            transport.write(b"".join(conn.data_to_send()))
        elif len(frames) == 1:  # the usual case: one broadcast since the last turn
            known = done.get(id(frames[0]))
            transport.write(known[1] if known is not None else serialise(frames[0], done))
        else:
            transport.write(b"".join([serialise(frame, done) for frame in frames]))
        return transport.get_write_buffer_size()


def write_out(outbox: Outbox, wire: WireSocket, done: SerialisedFrames) -> None:
    """Write what ``outbox`` holds; a socket whose unsent bytes pass the outbox's bound is a
    reader too slow to keep up, and its outbox is marked overflowed (its writer task closes it)."""
    frames = outbox.take_all()
    if frames and wire.write_frames(frames, done) > outbox.max_bytes:
        outbox.mark_overflowed()


class Flusher:
    """Writes every outbox that received frames during an event-loop turn, at the end of it.

    Every frame of a broadcast passes through here, once per recipient, so the bookkeeping is
    kept to a closure per outbox: it queues the outbox when its first frame arrives and
    schedules the flush when it is the turn's first outbox.
    """

    def __init__(self) -> None:
        self._dirty: list[tuple[Outbox, WireSocket]] = []
        #: Frames serialised lately, shared by :meth:`flush` and the direct writes.
        self._serialised: SerialisedFrames = {}

    def attach(self, outbox: Outbox, wire: WireSocket) -> None:
        call_soon = running_loop().call_soon
        dirty, flush, entry = self._dirty, self.flush, (outbox, wire)
        serialised = self._serialised

        def mark() -> None:
            dirty.append(entry)
            if len(dirty) == 1:
                call_soon(flush)

        outbox.attach(mark, wire.direct_writer(serialised))

    def flush(self) -> None:
        batch = self._dirty.copy()
        self._dirty.clear()  # the same list: the closures of attach() append to it
        self._serialised.clear()
        done = self._serialised
        for outbox, wire in batch:
            write_out(outbox, wire, done)
