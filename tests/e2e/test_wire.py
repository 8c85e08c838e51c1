"""Outgoing frames written straight to the socket (http/wire.py), over real sockets.

A broadcast is serialised once and each socket gets everything queued for it in one write per
event-loop turn; with permessage-deflate negotiated, each socket compresses its own frames. These
check what a client sees of that: every frame, whole, in order, in either codec, compressed or not.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pycrdt import Doc, Text

from collabgate.client import CollabClient
from collabgate.protocol import yjs
from tests.e2e.conftest import next_frame, raw_socket
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e

EDITS = 60


@pytest.fixture(scope="module")
def compressing_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path_factory.mktemp("deflate"), env={"COLLABGATE_WEBSOCKET_COMPRESSION": "true"}
    ).start()
    yield process
    process.terminate()


async def burst_of_edits(writer: CollabClient, resource: str) -> str:
    """Send EDITS updates without waiting for their ACKs; the text they make."""
    tasks = [
        asyncio.create_task(
            writer.edit(
                resource, lambda doc, n=n: doc.get("content", type=Text).insert(0, f"<{n}>")
            )
        )
        for n in range(EDITS)
    ]
    await asyncio.gather(*tasks)
    return str(writer.text(resource))


async def next_of_type(ws: Any, kind: str) -> dict[str, Any]:
    """The next frame of ``kind``, past presence events that may come first."""
    while True:
        frame = await asyncio.wait_for(next_frame(ws), 10)
        if frame["type"] == kind:
            return frame


async def relayed_revisions(ws: Any, count: int) -> list[int]:
    revisions: list[int] = []
    while len(revisions) < count:
        frame = await asyncio.wait_for(next_frame(ws), 10)
        if frame["type"] == "Y_UPDATE":
            revisions.append(frame["revision"])
    return revisions


async def test_compressed_sockets_get_every_frame_in_order(
    compressing_gateway: GatewayProcess,
) -> None:
    gateway, resource = compressing_gateway, f"patient:deflate-{uuid.uuid4().hex[:8]}"
    async with await raw_socket(
        gateway.ws_url, gateway.token("reader"), compression="deflate"
    ) as reader:
        assert reader.response is not None
        assert "permessage-deflate" in reader.response.headers.get("Sec-WebSocket-Extensions", "")
        await next_frame(reader)  # CONNECTED
        await reader.send(orjson.dumps({"type": "JOIN_RESOURCE", "resourceId": resource}).decode())
        await next_of_type(reader, "RESOURCE_STATE")
        async with CollabClient(
            gateway.ws_url, gateway.token("writer", "surgeon"), reconnect=False, compression=True
        ) as writer:
            await writer.join(resource)
            text = await burst_of_edits(writer, resource)
        revisions = await relayed_revisions(reader, EDITS)
    assert revisions == list(range(1, EDITS + 1))
    assert sorted(text.replace("<", " ").replace(">", " ").split(), key=int) == [
        str(n) for n in range(EDITS)
    ]


async def test_one_broadcast_reaches_both_codecs_whole_and_in_order(
    gateway: GatewayProcess,
) -> None:
    resource = f"patient:wire-{uuid.uuid4().hex[:8]}"
    async with (
        await raw_socket(gateway.ws_url, gateway.token("json-reader")) as json_reader,
        await raw_socket(
            f"ws://127.0.0.1:{gateway.port}/yjs/{resource}?token={gateway.token('yjs-reader')}"
        ) as yjs_reader,
    ):
        await next_frame(json_reader)
        await json_reader.send(
            orjson.dumps({"type": "JOIN_RESOURCE", "resourceId": resource}).decode()
        )
        await next_of_type(json_reader, "RESOURCE_STATE")
        async with CollabClient(
            gateway.ws_url, gateway.token("writer", "surgeon"), reconnect=False
        ) as writer:
            await writer.join(resource)
            text = await burst_of_edits(writer, resource)
        assert await relayed_revisions(json_reader, EDITS) == list(range(1, EDITS + 1))

        replica: Doc[Any] = Doc()
        while str(replica.get("content", type=Text)) != text:
            frame = await asyncio.wait_for(yjs_reader.recv(), 10)
            assert isinstance(frame, bytes)
            message = yjs.decode_message(frame)
            if isinstance(message, yjs.SyncStep2 | yjs.SyncUpdate):
                replica.apply_update(message.update)
