"""The running event loop, found without a system call, and waiting for futures to settle.

On CPython 3.11, ``asyncio.get_running_loop()`` (and with it ``asyncio.Queue.get`` on an empty
queue, ``asyncio.wait`` and every other asyncio call that looks the loop up) compares the
loop's process id with ``getpid()``, in case the process forked inside a running loop. glibc no
longer caches the process id, so that is a ``getpid`` system call each time: on the /yjs relay
at 2,000 clients, 8.5 % of the event loop's time (py-spy --native, docs/performance.md).
CPython 3.12 dropped the check; there :func:`running_loop` is ``asyncio.get_running_loop``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["MessageQueue", "pass_on", "running_loop", "settled", "settled_after"]


class _LoopOfThread(threading.local):
    loop: asyncio.AbstractEventLoop | None = None


_last = _LoopOfThread()


def _running_loop_cached() -> asyncio.AbstractEventLoop:
    """The loop running in this thread: the one found here last, while it still runs.

    A loop runs in one thread at a time and the cache is per thread, so a cached loop that is
    running is the one this code runs in. What is given up is the check for a process forked
    from inside a running loop, which the gateway never does.
    """
    loop = _last.loop
    if loop is None or not loop.is_running():
        loop = _last.loop = asyncio.get_running_loop()
    return loop


running_loop: Callable[[], asyncio.AbstractEventLoop] = (
    asyncio.get_running_loop if sys.version_info >= (3, 12) else _running_loop_cached
)


class MessageQueue(Generic[T]):
    """Items put by a protocol callback and taken, in order, by one reader task.

    What uvicorn's WebSocket protocol hands its app every message through, in place of its
    ``asyncio.Queue``. That one serves any number of getters and putters, a bound and
    ``join()``: each put clears an ``asyncio.Event`` and wakes a getter through a deque of
    futures, and each get looks the loop up, all in Python, once per message. A socket has one
    reader, so a deque and the reader's one waiting future do.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> T:
        """The oldest item, once there is one. A cancelled get takes nothing."""
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("MessageQueue has one reader; a second get() is waiting")
            self._waiter = running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


async def settled(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, without its result or exception, and without cancelling
    it if the waiter is cancelled (``asyncio.wait([future])``, minus the loop lookup)."""
    if future.done():
        return
    waiter: asyncio.Future[None] = future.get_loop().create_future()

    def wake(_: asyncio.Future[Any]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    try:
        await waiter
    finally:
        future.remove_done_callback(wake)


def settled_after(first: asyncio.Future[Any], second: asyncio.Future[T]) -> asyncio.Future[T]:
    """``second``'s outcome, done no earlier than ``first`` (whose own outcome is ignored).

    Callbacks, not a task: the gateway orders every stored edit of a connection after the one
    before it this way, without a task per edit.
    """
    if first.done():
        return second
    ordered: asyncio.Future[T] = second.get_loop().create_future()

    def settle(_: asyncio.Future[Any]) -> None:
        if first.done() and second.done():
            pass_on(second, ordered)

    first.add_done_callback(settle)
    second.add_done_callback(settle)
    return ordered


def pass_on(done: asyncio.Future[T], to: asyncio.Future[T]) -> None:
    """Give ``to`` the outcome of ``done`` (result, exception or cancellation), unless ``to`` is
    already done (its waiter gave up)."""
    if to.done():
        return
    if done.cancelled():
        to.cancel()
    elif (error := done.exception()) is not None:
        to.set_exception(error)
    else:
        to.set_result(done.result())
