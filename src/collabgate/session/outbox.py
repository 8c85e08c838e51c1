"""A connection's queue of frames waiting to be written, bounded in bytes, and what fills it.

A frame is ``str`` (a text frame: the ``/ws`` JSON codec) or ``bytes`` (a binary frame: the
``/yjs`` y-websocket codec). :class:`Outgoing` is one broadcast in both codecs, each encoded at
most once however many recipients share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

#: One WebSocket frame: text for the JSON codec, binary for the y-websocket codec.
Frame = str | bytes
#: How a connection's frames are encoded: ``json`` on ``/ws``, ``yjs`` on ``/yjs``.
Codec = Literal["json", "yjs"]


class Outgoing:
    """One broadcast, encoded at most once per codec, the same object for every recipient.

    ``json`` is the text frame for ``/ws`` peers, ``yjs`` the binary frame for ``/yjs`` peers;
    ``None`` when the event has no form for that codec (presence and locks have no y-websocket
    message). Document updates reach ``/yjs`` peers by the gateway's per-turn batch instead.
    """

    __slots__ = ("json", "yjs")

    def __init__(self, json: str | None, yjs: bytes | None = None) -> None:
        self.json = json
        self.yjs = yjs

    def for_codec(self, codec: Codec) -> Frame | None:
        return self.json if codec == "json" else self.yjs


class Outbox:
    """Frames for one connection, written out in order by its transport.

    ``push`` never blocks. When the unsent bytes pass ``max_bytes`` (a reader too slow to keep up)
    the outbox drops what it holds and marks itself ``overflowed``: the transport then closes the
    socket instead of buffering without bound.

    Two ways to be written out. By default a writer task waits on :meth:`wait` and drains
    :meth:`take_all`. A transport that can write from a callback instead attaches a
    ``notify`` function, called once when the outbox goes from empty to non-empty; :meth:`wait`
    then only wakes for what needs the writer task: an overflow or a close. Such a transport
    may attach ``write_now`` too, for :meth:`push_now`.
    """

    __slots__ = (
        "_frames",
        "_notify",
        "_ready",
        "_write_now",
        "closed",
        "max_bytes",
        "overflowed",
        "pending_bytes",
    )

    def __init__(self, max_bytes: int) -> None:
        self._frames: list[Frame] = []
        self._ready = asyncio.Event()
        self._notify: Callable[[], None] | None = None
        self._write_now: Callable[[Frame], int] | None = None
        self.max_bytes = max_bytes
        self.pending_bytes = 0
        self.overflowed = False
        self.closed = False

    def attach(
        self, notify: Callable[[], None], write_now: Callable[[Frame], int] | None = None
    ) -> None:
        """Call ``notify`` whenever frames arrive in an empty outbox (and now, if some wait).

        ``write_now(frame)`` writes one frame at once and returns the bytes the socket has not
        taken yet, or -1 when it is closing.
        """
        self._notify = notify
        self._write_now = write_now
        if self._frames:
            notify()

    def push(self, frame: Frame) -> bool:
        """Queue ``frame``; False when the connection is closed or has just overflowed."""
        if self.closed or self.overflowed:
            return False
        frames = self._frames
        frames.append(frame)
        self.pending_bytes += len(frame)
        if self.pending_bytes > self.max_bytes:
            self.mark_overflowed()
            return False
        if self._notify is None:
            self._ready.set()
        elif len(frames) == 1:
            self._notify()
        return True

    def push_now(self, frame: Frame) -> bool:
        """Write ``frame`` at once when nothing waits before it, else :meth:`push` it.

        For a caller at the end of an event-loop turn (a per-turn broadcast): writing now costs
        the same system call the end-of-turn flush would, without queueing first. False when
        the connection is closed or too slow (overflowed).
        """
        write_now = self._write_now
        if write_now is None or self._frames:
            return self.push(frame)
        if self.closed or self.overflowed:
            return False
        unsent = write_now(frame)
        if unsent > self.max_bytes:
            self.mark_overflowed()
            return False
        return unsent >= 0

    def mark_overflowed(self) -> None:
        """The reader is too slow: drop what is queued and wake the writer task to close."""
        self.overflowed = True
        self._frames.clear()
        self.pending_bytes = 0
        self._ready.set()

    async def wait(self) -> None:
        await self._ready.wait()

    def take_all(self) -> list[Frame]:
        frames, self._frames = self._frames, []
        self.pending_bytes = 0
        if not (self.closed or self.overflowed):
            self._ready.clear()
        return frames

    def close(self) -> None:
        """Stop accepting frames and wake the writer so it can finish."""
        self.closed = True
        # They refer back to this outbox: let reference counting free both.
        self._notify = self._write_now = None
        self._ready.set()

    def __len__(self) -> int:
        return len(self._frames)
