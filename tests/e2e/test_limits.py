"""Connection limits over real sockets: rate limit, heartbeat timeout, slow readers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import orjson
import pytest
import websockets

from collabgate.client import CollabClient
from tests.e2e.conftest import next_frame, raw_socket
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def strict_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path_factory.mktemp("strict"),
        env={
            "COLLABGATE_RATE_LIMIT_PER_SECOND": "5",
            "COLLABGATE_RATE_LIMIT_BURST": "10",
            "COLLABGATE_HEARTBEAT_TIMEOUT_SECONDS": "1",
            "COLLABGATE_SEND_QUEUE_MAX_BYTES": "65536",
            "COLLABGATE_MAX_AWARENESS_BYTES": "4096",
        },
    ).start()
    yield process
    process.terminate()


async def test_flood_is_rate_limited(strict_gateway: GatewayProcess) -> None:
    async with await raw_socket(strict_gateway.ws_url, strict_gateway.token("flooder")) as ws:
        await next_frame(ws)
        for i in range(30):
            await ws.send(orjson.dumps({"type": "HEARTBEAT", "ref": str(i)}).decode())
        replies = [await next_frame(ws) for _ in range(30)]
    limited = [r for r in replies if r.get("code") == "WS_5003"]
    assert 10 <= 30 - len(limited) <= 15
    assert limited


async def test_silent_socket_is_closed_with_timeout(strict_gateway: GatewayProcess) -> None:
    async with await raw_socket(strict_gateway.ws_url, strict_gateway.token("sleeper")) as ws:
        await next_frame(ws)
        error = await asyncio.wait_for(next_frame(ws), 15)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert error["code"] == "WS_1002"
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4408


@pytest.fixture(scope="module")
def small_queue_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A small send queue, and a rate limit the talker below never reaches: loopback socket
    buffers can take megabytes before the queue fills, and a rate-limited talker is another
    test (the one above)."""
    process = GatewayProcess(
        tmp_path_factory.mktemp("small-queue"),
        env={
            "COLLABGATE_SEND_QUEUE_MAX_BYTES": "65536",
            "COLLABGATE_RATE_LIMIT_PER_SECOND": "100000",
            "COLLABGATE_RATE_LIMIT_BURST": "100000",
        },
    ).start()
    yield process
    process.terminate()


async def test_slow_reader_is_disconnected_not_buffered(
    small_queue_gateway: GatewayProcess,
) -> None:
    gateway, resource = small_queue_gateway, "patient:slow"
    slow = await raw_socket(gateway.ws_url, gateway.token("slow"), max_queue=1)
    slow.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await next_frame(slow)
    await slow.send(orjson.dumps({"type": "JOIN_RESOURCE", "resourceId": resource}).decode())
    await next_frame(slow)
    # From here on the slow client reads nothing: the socket buffers fill, then its outbox.
    talker = CollabClient(gateway.ws_url, gateway.token("talker"), reconnect=False)
    await talker.connect()
    await talker.join(resource)
    state = {"pad": "x" * 3900}
    sent = 0
    while not gateway.logs_containing("slow_consumer_disconnected") and sent < 5000:
        await talker.awareness(resource, state)
        sent += 1
        if sent % 50 == 0:  # a round trip now and then keeps the talker from running ahead
            async with asyncio.timeout(10):
                await talker.heartbeat()
    await talker.close()
    assert gateway.logs_containing("slow_consumer_disconnected"), f"not dropped after {sent} frames"
    # Now read at full speed: through the 4 KB receive buffer, what the kernel still holds for
    # this socket arrives a few KB per window update, and the drain once took over 30 s in CI.
    slow.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    with pytest.raises(websockets.ConnectionClosed):
        async with asyncio.timeout(30):
            await read_until_closed(slow)
    await slow.close()


async def read_until_closed(ws: websockets.ClientConnection) -> None:
    while True:
        await ws.recv()
