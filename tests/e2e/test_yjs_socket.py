"""The /yjs socket layer (picows, http/picows_wire.py) as RFC 6455 asks of a server.

test_yjs_endpoint.py pins what the endpoint says; these pin how the frames carrying it are
taken apart and put together: fragments, limits, protocol errors, the closing handshake, pings,
the subprotocol, and the close a draining gateway sends. Frames a well-behaved client library
will not send go out through :class:`RawSocket`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import websockets
from pycrdt import Doc
from websockets.frames import Frame, Opcode

from collabgate.protocol import yjs
from tests.e2e.conftest import poll_audit
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e

#: Small enough that a message over the server's hard limit (4x) is quick to send.
MAX_FRAME_BYTES = 1024
HARD_LIMIT = 4 * MAX_FRAME_BYTES


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path_factory.mktemp("gateway"),
        env={"COLLABGATE_MAX_FRAME_BYTES": str(MAX_FRAME_BYTES)},
    ).start()
    yield process
    process.terminate()


def yjs_url(gateway: GatewayProcess, user: str = "alice", *, token: bool = True) -> str:
    """A fresh resource's /yjs URL, with ``user``'s token in the query unless ``token`` is False."""
    url = f"ws://127.0.0.1:{gateway.port}/yjs/patient:sock-{uuid.uuid4().hex[:8]}"
    return f"{url}?token={gateway.token(user)}" if token else url


async def next_message(ws: websockets.ClientConnection, kind: type) -> yjs.YjsMessage:
    while True:
        frame = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(frame, bytes)
        message = yjs.decode_message(frame)
        if isinstance(message, kind):
            return message


class RawSocket:
    """A WebSocket client that sends any frame, well-formed or not, and reads what comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> RawSocket:
        rest = url.removeprefix("ws://")
        host_port, _, path = rest.partition("/")
        host, _, port = host_port.partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert status.startswith(b"HTTP/1.1 101"), status
        return cls(reader, writer)

    def send(self, opcode: Opcode, payload: bytes, *, fin: bool = True) -> None:
        self.writer.write(Frame(opcode, payload, fin=fin).serialize(mask=True))

    async def frames(self) -> AsyncIterator[tuple[int, bytes]]:
        """(opcode, payload) of every frame the server sends, until it closes the socket."""
        while True:
            try:
                head = await asyncio.wait_for(self.reader.readexactly(2), 5)
            except asyncio.IncompleteReadError:
                return
            length = head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            yield head[0] & 0x0F, await self.reader.readexactly(length)

    async def close_code(self) -> int:
        """The code of the close frame the server sends (other frames skipped)."""
        async for opcode, payload in self.frames():
            if opcode == Opcode.CLOSE:
                return int.from_bytes(payload[:2], "big")
        raise AssertionError("the server closed the socket without a close frame")

    def close(self) -> None:
        self.writer.close()


async def test_a_fragmented_message_is_reassembled(gateway: GatewayProcess) -> None:
    async with websockets.connect(yjs_url(gateway)) as ws:
        await next_message(ws, yjs.SyncStep1)
        step1 = yjs.sync_step1(Doc().get_state())
        await ws.send([step1[:1], step1[1:2], step1[2:]])  # three frames, one message
        step2 = await next_message(ws, yjs.SyncStep2)
        assert isinstance(step2, yjs.SyncStep2)


async def test_a_message_over_the_hard_limit_closes_with_1009(gateway: GatewayProcess) -> None:
    one_frame = await RawSocket.open(yjs_url(gateway))
    one_frame.send(Opcode.BINARY, b"\x00" * (HARD_LIMIT + 1))
    assert await one_frame.close_code() == 1009
    one_frame.close()

    fragments = await RawSocket.open(yjs_url(gateway))
    fragments.send(Opcode.BINARY, b"\x00" * MAX_FRAME_BYTES, fin=False)
    for _ in range(4):  # each frame is small; together they pass the limit
        fragments.send(Opcode.CONT, b"\x00" * MAX_FRAME_BYTES, fin=False)
    assert await fragments.close_code() == 1009
    fragments.close()


async def test_a_message_over_the_frame_limit_closes_with_ws_3004(
    gateway: GatewayProcess,
) -> None:
    """Over ``max_frame_bytes`` but under the hard limit: the gateway reads it and says why."""
    async with websockets.connect(yjs_url(gateway)) as ws:
        await next_message(ws, yjs.SyncStep1)
        await ws.send(yjs.sync_update(b"\x00" * (MAX_FRAME_BYTES + 1)))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_message(ws, yjs.AuthMessage)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert closed.value.rcvd.reason.startswith("WS_3004 MESSAGE_TOO_LARGE")


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param([(Opcode.CONT, b"x", True)], 1002, id="continuation-without-a-message"),
        pytest.param(
            [(Opcode.BINARY, b"x", False), (Opcode.BINARY, b"y", True)],
            1002,
            id="new-message-inside-a-fragmented-one",
        ),
        pytest.param([(Opcode.TEXT, b"\xff\xfe", True)], 1007, id="text-not-utf-8"),
    ],
)
async def test_protocol_errors_close_with_their_code(
    gateway: GatewayProcess, frames: list[tuple[Opcode, bytes, bool]], code: int
) -> None:
    raw = await RawSocket.open(yjs_url(gateway))
    for opcode, payload, fin in frames:
        raw.send(opcode, payload, fin=fin)
    assert await raw.close_code() == code
    raw.close()


async def test_the_closing_handshake_and_the_audit_of_the_leave(gateway: GatewayProcess) -> None:
    user = f"leaver{uuid.uuid4().hex[:6]}"
    ws = await websockets.connect(yjs_url(gateway, user))
    await next_message(ws, yjs.SyncStep1)
    await ws.close(code=1000, reason="bye")
    assert ws.close_code == 1000  # the server answered our close frame with the same code
    assert await poll_audit(gateway, "USER_DISCONNECTED", "disconnected", user_id=user)


async def test_pings_are_answered(gateway: GatewayProcess) -> None:
    async with websockets.connect(yjs_url(gateway)) as ws:
        await next_message(ws, yjs.SyncStep1)
        pong = await ws.ping(b"are you there")
        latency = await asyncio.wait_for(pong, 5)
        assert latency >= 0


async def test_the_collabgate_subprotocol_carries_the_token(gateway: GatewayProcess) -> None:
    offered = ["collabgate", f"bearer.{gateway.token('alice')}"]
    async with websockets.connect(
        yjs_url(gateway, token=False),
        subprotocols=offered,  # type: ignore[arg-type]
    ) as ws:
        assert ws.subprotocol == "collabgate"
        assert isinstance(await next_message(ws, yjs.SyncStep1), yjs.SyncStep1)


async def test_a_draining_gateway_closes_yjs_sockets_with_1012(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path).start()
    ws = await websockets.connect(yjs_url(gateway))
    await next_message(ws, yjs.SyncStep1)
    exit_code = await asyncio.to_thread(gateway.terminate)
    await asyncio.wait_for(ws.wait_closed(), 10)
    assert ws.close_code == 1012
    assert exit_code in (0, -15)
    assert gateway.logs_containing('"gateway_stopped"')
