"""A connection's queue of frames waiting to be written, bounded in bytes."""

from __future__ import annotations

import asyncio
from collections import deque


class Outbox:
    """Frames for one connection, written by its writer task in order.

    ``push`` never blocks. When the unsent bytes pass ``max_bytes`` (a reader too slow to keep up)
    the outbox drops what it holds and marks itself ``overflowed``: the writer then closes the
    socket instead of buffering without bound.
    """

    __slots__ = ("_frames", "_ready", "closed", "max_bytes", "overflowed", "pending_bytes")

    def __init__(self, max_bytes: int) -> None:
        self._frames: deque[str] = deque()
        self._ready = asyncio.Event()
        self.max_bytes = max_bytes
        self.pending_bytes = 0
        self.overflowed = False
        self.closed = False

    def push(self, frame: str) -> bool:
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

    def take_all(self) -> list[str]:
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
