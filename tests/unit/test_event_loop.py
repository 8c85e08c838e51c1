"""ops/event_loop.py: the running loop without a getpid() per lookup, the message queue of a
socket, settled(), and ordering futures with settled_after()."""

from __future__ import annotations

import asyncio

import pytest

from collabgate.ops.event_loop import MessageQueue, pass_on, running_loop, settled, settled_after


def test_running_loop_is_the_loop_of_each_run_in_turn() -> None:
    async def found() -> tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
        return running_loop(), asyncio.get_running_loop()

    first = asyncio.run(found())
    second = asyncio.run(found())
    assert first[0] is first[1]
    assert second[0] is second[1]  # not the first run's loop, which the cache held
    assert first[1] is not second[1]


def test_running_loop_outside_a_loop_raises() -> None:
    asyncio.run(asyncio.sleep(0))  # leaves a stopped loop in the cache
    with pytest.raises(RuntimeError):
        running_loop()


async def test_a_message_queue_hands_items_to_its_waiting_reader_in_order() -> None:
    queue: MessageQueue[str] = MessageQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.put_nowait("first")
    queue.put_nowait("second")
    assert await getter == "first"
    assert (queue.qsize(), queue.empty()) == (1, False)
    assert await queue.get() == "second"
    assert queue.empty()


async def test_a_cancelled_get_takes_nothing_and_the_next_one_gets_the_item() -> None:
    queue: MessageQueue[str] = MessageQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    queue.put_nowait("frame")
    assert await queue.get() == "frame"


async def test_a_message_queue_refuses_a_second_waiting_reader() -> None:
    queue: MessageQueue[str] = MessageQueue()
    first = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one reader"):
        await queue.get()
    queue.put_nowait("frame")
    assert await first == "frame"


async def test_settled_waits_for_the_future_and_swallows_its_failure() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(settled(future))
    await asyncio.sleep(0)
    assert not waiting.done()
    future.set_exception(ValueError("store failed"))
    await waiting  # returns; the failure is the future's owner's to handle
    assert isinstance(future.exception(), ValueError)


async def test_a_cancelled_waiter_leaves_the_future_running() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(settled(future))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not future.cancelled()
    future.set_result(1)
    assert future.result() == 1


async def test_settled_returns_at_once_for_a_done_future() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    future.cancel()
    await settled(future)


def futures(count: int) -> list[asyncio.Future[int]]:
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(count)]


async def test_settled_after_holds_back_a_done_result_until_the_first_is_done() -> None:
    first, second = futures(2)
    ordered = settled_after(first, second)
    second.set_result(7)
    await second
    await asyncio.sleep(0)  # second's callbacks have run
    assert not ordered.done()
    first.set_exception(ValueError("the earlier store failed"))  # its outcome is not passed on
    assert await ordered == 7
    assert isinstance(first.exception(), ValueError)


async def test_settled_after_passes_on_a_failure_and_a_cancellation() -> None:
    first, failing, cancelled = futures(3)
    failed_in_order = settled_after(first, failing)
    cancelled_in_order = settled_after(first, cancelled)
    failing.set_exception(RuntimeError("database closed"))
    cancelled.cancel()
    first.set_result(1)
    with pytest.raises(RuntimeError, match="database closed"):
        await failed_in_order
    with pytest.raises(asyncio.CancelledError):
        await cancelled_in_order


async def test_settled_after_a_done_future_is_the_second_itself() -> None:
    first, second = futures(2)
    first.set_result(1)
    assert settled_after(first, second) is second


async def test_pass_on_leaves_a_future_whose_waiter_gave_up_alone() -> None:
    done, given_up = futures(2)
    done.set_result(3)
    given_up.cancel()
    pass_on(done, given_up)
    assert given_up.cancelled()
