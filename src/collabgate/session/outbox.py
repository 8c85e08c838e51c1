"""A connection's queue of frames waiting to be written, bounded in bytes, and what fills it.

A frame is ``str`` (a text frame: the ``/ws`` JSON codec) or ``bytes`` (a binary frame: the
``/yjs`` y-websocket codec). :class:`Outgoing` is one broadcast in both codecs, each encoded at
most once however many recipients share it.
"""

from __future__ import annotations

import asyncio
from collections import deque
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
    """Frames for one connection, written by its writer task in order.

    ``push`` never blocks. When the unsent bytes pass ``max_bytes`` (a reader too slow to keep up)
    the outbox drops what it holds and marks itself ``overflowed``: the writer then closes the
    socket instead of buffering without bound.
    """

    __slots__ = ("_frames", "_ready", "closed", "max_bytes", "overflowed", "pending_bytes")

    def __init__(self, max_bytes: int) -> None:
        self._frames: deque[Frame] = deque()
        self._ready = asyncio.Event()
        self.max_bytes = max_bytes
        self.pending_bytes = 0
        self.overflowed = False
        self.closed = False

    def push(self, frame: Frame) -> bool:
        """Queue ``frame``; False when the connection is closed or has just overflowed."""
        if self.closed or self.overflowed:
            return False
        self._frames.append(frame)
        self.pending_bytes += len(frame)
        if self.pending_bytes > self.max_bytes:
            self.overflowed = True
            self._frames.clear()
            self.pending_bytes = 0
        self._ready.set()
        return not self.overflowed

    async def wait(self) -> None:
        await self._ready.wait()

    def take_all(self) -> list[Frame]:
        frames = list(self._frames)
        self._frames.clear()
        self.pending_bytes = 0
        self._ready.clear()
        return frames

    def close(self) -> None:
        """Stop accepting frames and wake the writer so it can finish."""
        self.closed = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._frames)
